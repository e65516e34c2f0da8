"""Service accounts and least-privilege RBAC for each control-plane component.

Each component gets one ServiceAccount, one ClusterRole listing exactly the
verbs it uses, and the binding between them. Nothing is granted with ``*`` and
nothing beyond what the component's code does: identity reviews tokens and
records events; destination (and the policy service beside it) lists and
watches what discovery and policy are computed from, and records Events on
objects it cannot use; the injector only reads
namespaces. ``RULES`` is the single table; tests hold it to that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mesh.install.values import Values

__all__ = ["NAMESPACED_RULES", "RULES", "SERVICE_ACCOUNTS", "Rule", "rbac_objects"]

Manifest = dict[str, Any]

_WATCH = ("list", "watch")


@dataclass(frozen=True)
class Rule:
    """One PolicyRule: these verbs on these resources of these API groups."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def manifest(self) -> Manifest:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


SERVICE_ACCOUNTS = {
    "identity": "linkerd-identity",
    "destination": "linkerd-destination",
    "proxy-injector": "linkerd-proxy-injector",
}
"""Component -> its ServiceAccount in the control-plane namespace."""

RULES: dict[str, tuple[Rule, ...]] = {
    "identity": (
        Rule(("authentication.k8s.io",), ("tokenreviews",), ("create",)),
        Rule(("",), ("events",), ("create", "patch")),
    ),
    "destination": (
        Rule(("",), ("services", "endpoints", "pods", "nodes", "namespaces"), _WATCH),
        Rule(("discovery.k8s.io",), ("endpointslices",), _WATCH),
        Rule(
            ("policy.linkerd.io",),
            (
                "servers",
                "serverauthorizations",
                "authorizationpolicies",
                "meshtlsauthentications",
                "networkauthentications",
                "httproutes",
            ),
            _WATCH,
        ),
        Rule(("split.smi-spec.io",), ("trafficsplits",), _WATCH),
        Rule(("gateway.networking.k8s.io",), ("httproutes",), _WATCH),
        # Warning Events on objects discovery or policy cannot use (SEC-4).
        Rule(("",), ("events",), ("create", "patch")),
    ),
    "proxy-injector": (Rule(("",), ("namespaces",), ("get",)),),
}
"""Component -> its cluster-wide rules."""

NAMESPACED_RULES: dict[str, tuple[Rule, ...]] = {}
"""Component -> rules granted only inside the control-plane namespace. None today: the
control-plane namespace holds the identity issuer's key, so destination reads no Secret
there. Its read of link credentials is granted by ``multicluster install``, inside
``linkerd-multicluster`` only (``mesh.multicluster.render.destination_access_objects``)."""


def _meta(name: str, values: Values, component: str, *, namespaced: bool) -> Manifest:
    meta: Manifest = {
        "name": name,
        "labels": {
            "linkerd.io/control-plane-component": component,
            "linkerd.io/control-plane-ns": values.control_plane_ns,
        },
    }
    if namespaced:
        meta["namespace"] = values.control_plane_ns
    return meta


def _subject(component: str, values: Values) -> Manifest:
    return {
        "kind": "ServiceAccount",
        "name": SERVICE_ACCOUNTS[component],
        "namespace": values.control_plane_ns,
    }


def rbac_objects(values: Values) -> list[Manifest]:
    """ServiceAccounts, ClusterRoles, ClusterRoleBindings, Roles and RoleBindings."""
    ns = values.control_plane_ns
    objects: list[Manifest] = []
    for component, account in SERVICE_ACCOUNTS.items():
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": _meta(account, values, component, namespaced=True),
            }
        )
    for component, rules in RULES.items():
        name = f"linkerd-{ns}-{component}"
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": _meta(name, values, component, namespaced=False),
                "rules": [r.manifest() for r in rules],
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": _meta(name, values, component, namespaced=False),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [_subject(component, values)],
            }
        )
    for component, rules in NAMESPACED_RULES.items():
        name = f"{SERVICE_ACCOUNTS[component]}-local"
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta(name, values, component, namespaced=True),
                "rules": [r.manifest() for r in rules],
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(name, values, component, namespaced=True),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [_subject(component, values)],
            }
        )
    return objects
