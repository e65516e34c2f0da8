"""What ``multicluster install``, ``uninstall`` and ``allow`` print: pure builders of manifests.

``install_objects`` returns, in ``kubectl apply`` order, the ``linkerd-multicluster``
namespace, the Link CRD, the gateway (ServiceAccount, Deployment whose only
container is ``pause`` — the injector adds the proxy that does the work — and a
LoadBalancer Service whose annotations tell ``link`` the gateway's identity and
probe), and the default remote-access account whose token ``link`` hands to
other clusters, with a ClusterRole reading only what a linked mirror controller
and ``check --multicluster`` read. ``allow_objects`` is that account under
another name. ``uninstall_references`` names all of it in deletion order.
Everything carries ``linkerd.io/extension: multicluster``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from mesh.crds import link_crd
from mesh.install.controlplane import CONFIG_MAP, TRUST_ROOTS_CONFIG_MAP
from mesh.install.render import reference
from mesh.multicluster import labels as mc
from mesh.multicluster.values import McValues

__all__ = [
    "GATEWAY_LABELS",
    "REMOTE_ACCESS_RULES",
    "allow_objects",
    "created_by",
    "destination_access_objects",
    "gateway_objects",
    "install_objects",
    "namespace",
    "remote_access_objects",
    "uninstall_references",
]

Manifest = dict[str, Any]

GATEWAY_LABELS = {"app": mc.GATEWAY_NAME, mc.COMPONENT: "gateway"}
"""The gateway pods' labels; its Service selects them."""

_READ = ["get", "list", "watch"]
REMOTE_ACCESS_RULES: list[Manifest] = [
    {
        "apiGroups": [""],
        "resources": ["services", "endpoints", "pods", "namespaces"],
        "verbs": _READ,
    },
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get"],
        "resourceNames": [CONFIG_MAP, TRUST_ROOTS_CONFIG_MAP],
    },
]
"""What a remote-access token may do in its cluster: read what mirrors and remote
discovery are computed from, and the mesh's config and trust anchors (for
``check --multicluster``'s shared-anchor check). Nothing else."""

_DELETE_ORDER = (
    "Deployment",
    "Service",
    "Secret",
    "ServiceAccount",
    "RoleBinding",
    "Role",
    "ClusterRoleBinding",
    "ClusterRole",
    "Namespace",
    "CustomResourceDefinition",
)
_EXTENSION_LABELS = {mc.EXTENSION: mc.EXTENSION_NAME}


def created_by(values: McValues) -> str:
    return f"isthmus/cli {values.image_tag}"


def _meta(
    values: McValues, name: str, labels: dict[str, str] | None = None, *, namespaced: bool = True
) -> Manifest:
    meta: Manifest = {"name": name}
    if namespaced:
        meta["namespace"] = mc.NAMESPACE
    meta["labels"] = {**_EXTENSION_LABELS, **(labels or {})}
    meta["annotations"] = {"linkerd.io/created-by": created_by(values)}
    return meta


def namespace(values: McValues) -> Manifest:
    meta = _meta(values, mc.NAMESPACE, namespaced=False)
    # The gateway's proxy-init needs NET_ADMIN, which only the privileged profile allows.
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _service_account(values: McValues, name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(values, name)}


def gateway_objects(values: McValues) -> list[Manifest]:
    """The gateway's ServiceAccount, Deployment and LoadBalancer Service."""
    identity = values.identity(mc.GATEWAY_NAME, mc.NAMESPACE)
    pause = {
        "name": "pause",
        "image": values.image,
        "imagePullPolicy": values.image_pull_policy,
        "args": ["component", "pause"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(values, mc.GATEWAY_NAME, GATEWAY_LABELS),
        "spec": {
            "replicas": values.gateway_replicas,
            "selector": {"matchLabels": GATEWAY_LABELS},
            "template": {
                "metadata": {
                    "annotations": {
                        "linkerd.io/inject": "enabled",
                        mc.ENABLE_GATEWAY: "true",
                        "linkerd.io/created-by": created_by(values),
                    },
                    "labels": {**_EXTENSION_LABELS, **GATEWAY_LABELS},
                },
                "spec": {
                    "serviceAccountName": mc.GATEWAY_NAME,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [pause],
                },
            },
        },
    }
    service_meta = _meta(values, mc.GATEWAY_NAME, GATEWAY_LABELS)
    service_meta["annotations"].update(
        {
            mc.GATEWAY_IDENTITY: identity,
            mc.PROBE_PATH_ANNOTATION: values.probe_path,
            mc.PROBE_PERIOD_ANNOTATION: str(values.probe_seconds),
        }
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": service_meta,
        "spec": {
            "type": values.gateway_service_type,
            "selector": GATEWAY_LABELS,
            "ports": [
                {
                    "name": mc.GATEWAY_PORT_NAME,
                    "port": values.gateway_port,
                    "targetPort": mc.GATEWAY_PORT,
                    "protocol": "TCP",
                },
                {
                    "name": mc.PROBE_PORT_NAME,
                    "port": values.probe_port,
                    "targetPort": mc.PROBE_PORT,
                    "protocol": "TCP",
                },
            ],
        },
    }
    return [_service_account(values, mc.GATEWAY_NAME), deployment, service]


def remote_access_objects(values: McValues, service_account: str) -> list[Manifest]:
    """``service_account`` with a long-lived token Secret and read access for linked mirrors.

    The ClusterRole and its binding share the account's name, so each account
    handed out (``install``'s default, or one per ``allow``) can be revoked alone.
    """
    token_meta = _meta(values, mc.token_secret_name(service_account))
    token_meta["annotations"]["kubernetes.io/service-account.name"] = service_account
    token = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": token_meta,
        "type": "kubernetes.io/service-account-token",
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(values, service_account, namespaced=False),
        "rules": REMOTE_ACCESS_RULES,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(values, service_account, namespaced=False),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": service_account,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": service_account, "namespace": mc.NAMESPACE}
        ],
    }
    return [_service_account(values, service_account), token, role, binding]


DESTINATION_ACCESS = "linkerd-destination-remote-discovery"
"""The Role and RoleBinding letting the control plane's destination read Links and
their credentials (remote discovery), in ``linkerd-multicluster`` only."""
DESTINATION_SA = "linkerd-destination"
DESTINATION_ACCESS_RULES: list[Manifest] = [
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
    {"apiGroups": ["multicluster.linkerd.io"], "resources": ["links"], "verbs": ["list", "watch"]},
]
"""Secrets are read by list and watch (filtered to the credentials type); ``resourceNames``
cannot be used since the Links' Secret names are not known here. The namespace holds
only link credentials and remote-access tokens for this very cluster's read-only
account, which grant less than destination already has; the identity issuer's key
(control-plane namespace) stays out of reach."""


def destination_access_objects(values: McValues) -> list[Manifest]:
    """The Role and RoleBinding of ``DESTINATION_ACCESS`` for the destination's account."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(values, DESTINATION_ACCESS),
        "rules": DESTINATION_ACCESS_RULES,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(values, DESTINATION_ACCESS),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": DESTINATION_ACCESS,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": DESTINATION_SA, "namespace": values.control_plane_ns}
        ],
    }
    return [role, binding]


def install_objects(values: McValues) -> list[Manifest]:
    """Everything ``multicluster install`` prints, in ``kubectl apply`` order."""
    crd = link_crd(values.control_plane_ns)
    crd["metadata"].setdefault("annotations", {})["linkerd.io/created-by"] = created_by(values)
    return [
        namespace(values),
        crd,
        *remote_access_objects(values, mc.REMOTE_ACCESS_SA),
        *destination_access_objects(values),
        *(gateway_objects(values) if values.gateway_enabled else []),
    ]


def allow_objects(values: McValues, service_account: str) -> list[Manifest]:
    """What ``multicluster allow --service-account-name`` prints (the namespace must exist)."""
    return remote_access_objects(values, service_account)


def uninstall_references(values: McValues, extra: Iterable[Manifest] = ()) -> list[Manifest]:
    """References to everything ``install`` made (gateway included) and ``extra``, in
    ``kubectl delete`` order: workloads first, the namespace and the Link CRD last."""
    objects = [*install_objects(dataclasses.replace(values, gateway_enabled=True)), *extra]
    rank = {kind: i for i, kind in enumerate(_DELETE_ORDER)}
    ordered = sorted(objects, key=lambda o: rank.get(o["kind"], len(rank)))
    seen: set[tuple[str, str, str]] = set()
    references = []
    for obj in ordered:
        ref = reference(obj)
        key = (ref["kind"], ref["metadata"].get("namespace", ""), ref["metadata"]["name"])
        if key not in seen:
            seen.add(key)
            references.append(ref)
    return references
