"""The ``isthmus`` adapter: drives this project's mesh through its CLI and kubectl.

Every action is a command line: ``isthmus identity`` makes the trust material,
``isthmus install [--crds]`` prints manifests that ``kubectl apply --server-side``
applies, ``isthmus check -o json --wait`` judges health and ``isthmus uninstall`` feeds
``kubectl delete``. Commands go through a ``Runner`` (the seam unit tests fake), so
nothing here imports the mesh. What each install applied is kept under ``workdir``
(``<cluster>/crds.yaml``, ``<cluster>/install.yaml``) for the uninstall check and for
people reading a failure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.adapters.base import (
    CheckResult,
    Feature,
    IdentityApi,
    IssuerFiles,
    MeshError,
    ObjectRef,
    SharedTrust,
    manifest_refs,
    parse_check_json,
)
from harness.adapters.isthmus_multicluster import IsthmusMulticluster
from harness.adapters.isthmus_viz import IsthmusViz
from harness.settings import TIMEOUTS

if TYPE_CHECKING:
    from harness.kube import Kube
    from harness.providers.base import Cluster

__all__ = [
    "Completed",
    "CrdOutcome",
    "IsthmusAdapter",
    "Runner",
    "manifest_refs",
    "subprocess_runner",
]

REPO = Path(__file__).resolve().parents[2]

# Waits of this adapter, named in harness.settings.TIMEOUTS.
INSTALL_READY = TIMEOUTS.mesh_install
COMMAND = TIMEOUTS.mesh_command
UNINSTALL = TIMEOUTS.mesh_uninstall

FIELD_MANAGER = "isthmus-harness"
INJECT_ANNOTATION = "linkerd.io/inject"
ADMIN_PORT = 4191


@dataclass(frozen=True)
class CrdOutcome:
    """What ``install --crds`` or ``uninstall`` named, and what it said about the rest."""

    names: tuple[str, ...]
    """The CRDs in its output."""
    notes: str
    """Its messages (stderr): which CRDs it left, and why."""


@dataclass(frozen=True)
class Completed:
    """A finished command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        out = (self.stderr.strip() or self.stdout.strip())[-3000:]
        return f"`{' '.join(self.argv)}` exited {self.returncode}: {out}"


Runner = Callable[[Sequence[str], str | None, float], Completed]
"""Runs ``argv`` with ``input`` on stdin within ``timeout`` seconds."""


def subprocess_runner(argv: Sequence[str], input: str | None, timeout: float) -> Completed:
    try:
        p = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise MeshError(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s") from e
    except OSError as e:
        raise MeshError(f"cannot run `{' '.join(argv)}`: {e}") from e
    return Completed(tuple(argv), p.returncode, p.stdout, p.stderr)


def default_isthmus() -> tuple[str, ...]:
    """The ``isthmus`` console script of this environment (else the one on PATH)."""
    here = Path(sys.executable).parent / "isthmus"
    if here.is_file():
        return (str(here),)
    found = shutil.which("isthmus")
    if found is None:
        raise MeshError("no `isthmus` command: install the project (pip install -e .)")
    return (found,)


def default_kubectl(cluster: Cluster) -> str:
    """The cached upstream kubectl of the cluster's version, else kubectl on PATH."""
    from harness import upstream

    if cluster.version:
        try:
            return str(upstream.binaries(cluster.version).path("kubectl"))
        except (FileNotFoundError, KeyError):
            pass
    found = shutil.which("kubectl")
    if found is None:
        raise MeshError(
            f"no kubectl for cluster {cluster.name}: build it "
            f"(python -m harness build --k8s-version {cluster.version}) or put one on PATH"
        )
    return found


class IsthmusAdapter(IsthmusMulticluster, IsthmusViz):
    """The Isthmus mesh, driven through ``isthmus`` and kubectl."""

    name = "isthmus"
    features = frozenset(f.value for f in Feature)
    control_plane_ns = "linkerd"
    control_plane_namespaces = ("linkerd",)
    components: Mapping[str, tuple[str, str]] = {
        "identity": ("linkerd", "linkerd-identity"),
        "destination": ("linkerd", "linkerd-destination"),
        "proxy-injector": ("linkerd", "linkerd-proxy-injector"),
        "failover": ("linkerd", "linkerd-failover"),
    }
    identity_api = IdentityApi(
        proto=REPO / "mesh" / "proto" / "identity.proto",
        service="isthmus.identity.v1.Identity",
        method="Certify",
        request="isthmus.identity.v1.CertifyRequest",
        response="isthmus.identity.v1.CertifyResponse",
        namespace="linkerd",
        service_name="linkerd-identity",
        port=8080,
        token_audience="identity.l5d.io",
        plaintext=False,
        service_account="linkerd-identity",
    )

    def __init__(
        self,
        workdir: Path,
        *,
        runner: Runner = subprocess_runner,
        isthmus: Sequence[str] | None = None,
        kubectl: Callable[[Cluster], str] = default_kubectl,
        image_tag: str = "dev",
    ) -> None:
        self.workdir = workdir
        self.runner = runner
        self._isthmus = tuple(isthmus) if isthmus is not None else None
        self.kubectl = kubectl
        self.image_tag = image_tag

    @property
    def isthmus(self) -> tuple[str, ...]:
        if self._isthmus is None:
            self._isthmus = default_isthmus()
        return self._isthmus

    # -- commands ----------------------------------------------------------------------------

    def _run(
        self, argv: Sequence[str], what: str, input: str | None = None, timeout: float = COMMAND
    ) -> Completed:
        done = self.runner(argv, input, timeout)
        if done.returncode != 0:
            raise MeshError(f"{what}: {done.describe()}")
        return done

    def _kubectl(self, cluster: Cluster, *args: str) -> list[str]:
        return [
            self.kubectl(cluster),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--context",
            cluster.context,
            *args,
        ]

    def _target(self, cluster: Cluster) -> list[str]:
        return ["--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]

    def _apply(self, cluster: Cluster, manifests: str, what: str) -> None:
        argv = self._kubectl(
            cluster,
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={FIELD_MANAGER}",
            "-f",
            "-",
        )
        self._run(argv, f"[{cluster.name}] applying {what}", input=manifests)

    # -- trust -------------------------------------------------------------------------------

    def create_trust(self, clusters: Sequence[Cluster], directory: Path) -> SharedTrust:
        anchor_dir = directory / "anchor"
        anchor = (anchor_dir / "ca.crt", anchor_dir / "ca.key")
        if not all(p.is_file() for p in anchor):
            self._run(
                [
                    *self.isthmus,
                    "identity",
                    "create-anchor",
                    "--trust-domain",
                    clusters[0].trust_domain,
                    "--out-dir",
                    str(anchor_dir),
                    "--force",
                ],
                "creating the trust anchor",
            )
        issuers = {}
        for c in clusters:
            out = directory / "issuers" / c.name
            files = IssuerFiles(out / "issuer.crt", out / "issuer.key")
            if not (files.cert.is_file() and files.key.is_file()):
                self._run(
                    [
                        *self.isthmus,
                        "identity",
                        "create-issuer",
                        "--anchor-cert",
                        str(anchor[0]),
                        "--anchor-key",
                        str(anchor[1]),
                        "--trust-domain",
                        c.trust_domain,
                        "--control-plane-ns",
                        self.control_plane_ns,
                        "--out-dir",
                        str(out),
                        "--force",
                    ],
                    f"[{c.name}] creating the issuer",
                )
            issuers[c.name] = files
        return SharedTrust(anchor[0], anchor[1], issuers)

    # -- install -----------------------------------------------------------------------------

    def install_args(self, cluster: Cluster, trust: SharedTrust) -> list[str]:
        """The ``isthmus install`` command line for ``cluster``."""
        issuer = trust.issuer(cluster.name)
        return [
            *self.isthmus,
            "install",
            "--identity-trust-anchors-file",
            str(trust.anchor_cert),
            "--identity-issuer-certificate-file",
            str(issuer.cert),
            "--identity-issuer-key-file",
            str(issuer.key),
            "--cluster-domain",
            cluster.domain,
            "--identity-trust-domain",
            cluster.trust_domain,
            "--image-tag",
            self.image_tag,
        ]

    def _cluster_dir(self, cluster: Cluster) -> Path:
        d = self.workdir / cluster.name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def apply_crds(self, cluster: Cluster) -> CrdOutcome:
        """``install --crds`` for ``cluster``, applied: the CRDs it printed and its notes."""
        crds = self._run(
            [*self.isthmus, "install", "--crds", *self._target(cluster)],
            f"[{cluster.name}] install --crds",
        )
        (self._cluster_dir(cluster) / "crds.yaml").write_text(crds.stdout)
        self._apply(cluster, crds.stdout, "the CRDs")
        return CrdOutcome(tuple(r.name for r in manifest_refs(crds.stdout)), crds.stderr)

    def uninstall_crds(self, cluster: Cluster) -> CrdOutcome:
        """The CRDs ``uninstall`` would delete from ``cluster`` (nothing is deleted)."""
        refs = self._run(
            [*self.isthmus, "uninstall", *self._target(cluster)], f"[{cluster.name}] uninstall"
        )
        names = [r.name for r in manifest_refs(refs.stdout) if r.kind == "CustomResourceDefinition"]
        return CrdOutcome(tuple(names), refs.stderr)

    def apply_install(self, cluster: Cluster, trust: SharedTrust) -> None:
        """Apply the CRDs, then the control plane, to ``cluster`` (no waiting)."""
        self.apply_crds(cluster)
        plane = self._run(self.install_args(cluster, trust), f"[{cluster.name}] install")
        path = self._cluster_dir(cluster) / "install.yaml"
        path.write_text(plane.stdout)
        path.chmod(0o600)  # it carries the issuer's key
        present = self._run(
            self._kubectl(
                cluster,
                "get",
                "namespace",
                self.control_plane_ns,
                "--ignore-not-found",
                "-o",
                "name",
            ),
            f"[{cluster.name}] looking for an earlier install",
        ).stdout.strip()
        self._apply(cluster, plane.stdout, "the control plane")
        if present:
            # Over an earlier install: new issuer and webhook secrets only reach running
            # components when they restart.
            self._run(
                self._kubectl(
                    cluster, "-n", self.control_plane_ns, "rollout", "restart", "deployment"
                ),
                f"[{cluster.name}] restarting the control plane over an earlier install",
            )

    def install(self, clusters: Sequence[Cluster], trust: SharedTrust) -> None:
        for c in clusters:
            self.apply_install(c, trust)
        with ThreadPoolExecutor(max_workers=max(1, len(clusters))) as pool:
            results = list(pool.map(lambda c: self.check(c, wait=INSTALL_READY), clusters))
        failed = [r.describe() for r in results if not r.success]
        if failed:
            raise MeshError(
                f"the mesh did not become healthy within {INSTALL_READY:.0f}s: "
                + " | ".join(failed)
            )

    def check_args(self, cluster: Cluster, wait: float) -> list[str]:
        return [
            *self.isthmus,
            "check",
            *self._target(cluster),
            "-o",
            "json",
            "--wait",
            f"{wait:.0f}s" if wait > 0 else "0s",
        ]

    def check(self, cluster: Cluster, wait: float = 0) -> CheckResult:
        done = self.runner(self.check_args(cluster, wait), None, wait + COMMAND)
        return parse_check_json(cluster.name, done.stdout, done.stderr, done.returncode)

    # -- uninstall ---------------------------------------------------------------------------

    def uninstall(self, cluster: Cluster) -> None:
        refs = self._run(
            [*self.isthmus, "uninstall", *self._target(cluster)], f"[{cluster.name}] uninstall"
        )
        argv = self._kubectl(
            cluster,
            "delete",
            "--ignore-not-found",
            "--wait=true",
            f"--timeout={UNINSTALL:.0f}s",
            "-f",
            "-",
        )
        self._run(
            argv,
            f"[{cluster.name}] deleting what uninstall names",
            input=refs.stdout,
            timeout=UNINSTALL + COMMAND,
        )

    def installed_objects(self, cluster: Cluster) -> list[ObjectRef]:
        refs: list[ObjectRef] = []
        for name in ("crds.yaml", "install.yaml"):
            path = self.workdir / cluster.name / name
            if not path.is_file():
                raise MeshError(f"[{cluster.name}] no record of the install ({path} is missing)")
            refs += manifest_refs(path.read_text())
        return refs

    # -- workloads ---------------------------------------------------------------------------

    def mesh_namespace(self, kube: Kube, namespace: str) -> None:
        from lightkube.resources.core_v1 import Namespace

        kube.client.patch(
            Namespace,
            namespace,
            {"metadata": {"annotations": {INJECT_ANNOTATION: "enabled"}}},
        )

    def inject(self, manifest: str) -> str:
        return self._run([*self.isthmus, "inject", "-"], "isthmus inject -", input=manifest).stdout

    def metrics(self, kube: Kube, namespace: str, pod: str) -> str:
        r = kube.pod_proxy(namespace, pod, ADMIN_PORT, "/metrics")
        if r.status_code != 200:
            raise MeshError(
                f"[{kube.name}] proxy metrics of {namespace}/{pod} (port {ADMIN_PORT}) "
                f"answered {r.status_code}: {r.text[:500]}"
            )
        return r.text
