"""The conditions ``isthmus check`` verifies, as pure functions of a ``ClusterSnapshot``.

Each check returns its ``Result``s (one per thing checked); every failure says
what is wrong and what to do. ``INSTALL_CHECKS`` are what ``check`` runs after an
install, ``PRE_CHECKS`` what ``check --pre`` runs before one. When the API cannot
be queried, nothing after that is judged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from mesh.check.certchecks import issuer_valid, trust_roots_valid, webhook_valid
from mesh.check.snapshot import Access, ClusterSnapshot, Result, Status
from mesh.crds import REQUIRED
from mesh.install.controlplane import CONFIG_MAP, DEPLOYMENTS

__all__ = [
    "INSTALL_CHECKS",
    "MIN_KUBERNETES",
    "PRE_ACCESS",
    "PRE_CHECKS",
    "Check",
    "api_reachable",
    "can_create",
    "config_present",
    "crds_installed",
    "deployments_ready",
    "kubernetes_version",
    "namespace_exists",
    "no_existing_control_plane",
    "run_checks",
]

Check = Callable[[ClusterSnapshot], list[Result]]

MIN_KUBERNETES = (1, 22)
"""The oldest Kubernetes the mesh supports (apiextensions v1, projected tokens, SSA)."""

_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def _ok(category: str, description: str) -> Result:
    return Result(category, description, Status.OK)


def api_reachable(s: ClusterSnapshot) -> list[Result]:
    description = "can query the Kubernetes API"
    if s.api_error is not None:
        return [
            Result(
                "kubernetes-api",
                description,
                Status.FAIL,
                s.api_error,
                "check --context/--kubeconfig, that the API server is up (kubectl cluster-info) "
                "and that the user may read the control plane's objects",
            )
        ]
    return [_ok("kubernetes-api", description)]


def kubernetes_version(s: ClusterSnapshot) -> list[Result]:
    description = "is running the minimum Kubernetes API version"
    minimum = ".".join(map(str, MIN_KUBERNETES))
    match = _VERSION.match(s.server_version)
    if not match:
        return [
            Result(
                "kubernetes-version",
                description,
                Status.WARN,
                f"cannot read the server version {s.server_version!r}",
                f"make sure the cluster runs Kubernetes {minimum} or newer: kubectl version",
            )
        ]
    if (int(match[1]), int(match[2])) < MIN_KUBERNETES:
        return [
            Result(
                "kubernetes-version",
                description,
                Status.FAIL,
                f"the cluster runs Kubernetes {s.server_version}; {minimum} or newer is needed",
                "upgrade the cluster",
            )
        ]
    return [_ok("kubernetes-version", description)]


def crds_installed(s: ClusterSnapshot) -> list[Result]:
    description = "control plane CustomResourceDefinitions exist"
    problems = []
    for name, versions in REQUIRED.items():
        if name not in s.crds:
            problems.append(f"{name} is missing")
            continue
        missing = [v for v in versions if v not in s.crds[name]]
        if missing:
            problems.append(f"{name} does not serve {', '.join(missing)}")
    if problems:
        return [
            Result(
                "linkerd-crds",
                description,
                Status.FAIL,
                "; ".join(problems),
                "isthmus install --crds | kubectl apply -f -",
            )
        ]
    return [_ok("linkerd-crds", description)]


def namespace_exists(s: ClusterSnapshot) -> list[Result]:
    description = "control plane namespace exists"
    if not s.namespace_exists:
        return [
            Result(
                "linkerd-existence",
                description,
                Status.FAIL,
                f"namespace {s.control_plane_ns} does not exist",
                "install the control plane: isthmus install | kubectl apply -f -",
            )
        ]
    return [_ok("linkerd-existence", description)]


def config_present(s: ClusterSnapshot) -> list[Result]:
    description = f"'{CONFIG_MAP}' config map exists"
    if CONFIG_MAP not in s.config_maps:
        return [
            Result(
                "linkerd-existence",
                description,
                Status.FAIL,
                f"ConfigMap {s.control_plane_ns}/{CONFIG_MAP} does not exist",
                "install the control plane: isthmus install | kubectl apply -f -",
            )
        ]
    return [_ok("linkerd-existence", description)]


def deployments_ready(s: ClusterSnapshot) -> list[Result]:
    results = []
    ns = s.control_plane_ns
    for name in DEPLOYMENTS:
        description = f"{name} deployment is ready"
        state = s.deployments.get(name)
        if state is None:
            results.append(
                Result(
                    "linkerd-existence",
                    description,
                    Status.FAIL,
                    f"{name} deployment does not exist",
                    f"re-apply the control plane: isthmus install | kubectl apply -f -; "
                    f"kubectl -n {ns} get deploy",
                )
            )
        elif state.desired < 1 or state.ready < state.desired:
            results.append(
                Result(
                    "linkerd-existence",
                    description,
                    Status.FAIL,
                    f"{name} deployment has {state.ready}/{state.desired} ready replicas",
                    f"kubectl -n {ns} describe deploy {name}",
                    retryable=state.desired >= 1,
                )
            )
        else:
            results.append(_ok("linkerd-existence", description))
    return results


PRE_ACCESS: tuple[Access, ...] = (
    Access("create", "", "namespaces"),
    Access("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    Access("create", "rbac.authorization.k8s.io", "clusterroles"),
    Access("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    Access("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
)
"""What install must be allowed to create, asked of the API server by ``check --pre``."""


def can_create(s: ClusterSnapshot) -> list[Result]:
    results = []
    for access in PRE_ACCESS:
        description = f"can {access}"
        if s.access.get(access, False):
            results.append(_ok("pre-kubernetes-setup", description))
        else:
            results.append(
                Result(
                    "pre-kubernetes-setup",
                    description,
                    Status.FAIL,
                    f"the current user may not {access}",
                    "use a context with cluster-admin rights: "
                    f"kubectl auth can-i {access.verb} {access.resource}"
                    + (f".{access.group}" if access.group else ""),
                )
            )
    return results


def no_existing_control_plane(s: ClusterSnapshot) -> list[Result]:
    description = "control plane namespace does not already exist"
    if s.namespace_exists is None:
        return [
            Result(
                "pre-kubernetes-setup",
                description,
                Status.WARN,
                f"the current user may not read namespace {s.control_plane_ns}",
                f"kubectl get namespace {s.control_plane_ns}",
            )
        ]
    if s.namespace_exists:
        return [
            Result(
                "pre-kubernetes-setup",
                description,
                Status.FAIL,
                f"namespace {s.control_plane_ns} already exists",
                "check the existing install with `isthmus check`, or remove it: "
                "isthmus uninstall | kubectl delete -f -",
            )
        ]
    return [_ok("pre-kubernetes-setup", description)]


INSTALL_CHECKS: tuple[Check, ...] = (
    api_reachable,
    kubernetes_version,
    crds_installed,
    namespace_exists,
    config_present,
    deployments_ready,
    trust_roots_valid,
    issuer_valid,
    webhook_valid,
)
PRE_CHECKS: tuple[Check, ...] = (
    api_reachable,
    kubernetes_version,
    can_create,
    no_existing_control_plane,
)


def run_checks(checks: Sequence[Check], snapshot: ClusterSnapshot) -> list[Result]:
    """Every check's results in order; only the API check when the API is unreachable."""
    if snapshot.api_error is not None:
        return api_reachable(snapshot)
    return [result for check in checks for result in check(snapshot)]
