"""Whole installs as manifests: what ``install``, ``install --crds`` and ``uninstall`` print.

``render_crds`` and ``render_install`` return documents in the order ``kubectl
apply -f -`` needs them (namespace and RBAC before the workloads that use them);
``uninstall_objects`` names every one of them, plus the CRDs, in the order
``kubectl delete -f -`` should remove them. ``dump_all`` / ``load_all`` are the
one YAML form of the CLI: block style, keys in the order written, no aliases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from mesh.crds import crds
from mesh.install.controlplane import control_plane_objects, namespace
from mesh.install.credentials import IdentityMaterial, WebhookCert
from mesh.install.rbac import rbac_objects
from mesh.install.values import Values

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "Manifest",
    "dump_all",
    "load_all",
    "reference",
    "render_crds",
    "render_install",
    "uninstall_objects",
]

Manifest = dict[str, Any]

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)
"""Kinds that live outside any namespace."""

_DELETE_ORDER = (
    "MutatingWebhookConfiguration",
    "Service",
    "Deployment",
    "Secret",
    "ConfigMap",
    "RoleBinding",
    "Role",
    "ServiceAccount",
    "ClusterRoleBinding",
    "ClusterRole",
    "Namespace",
    "CustomResourceDefinition",
)


class _Dumper(yaml.SafeDumper):
    """Block-style YAML without anchors, with multi-line strings as literal blocks."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_all(docs: Iterable[Manifest]) -> str:
    """``docs`` as one multi-document YAML stream, each document starting with ``---``."""
    return yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, default_flow_style=False
    )


def load_all(text: str) -> list[Any]:
    """The non-empty documents of a YAML stream (``yaml.YAMLError`` if it does not parse)."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def render_crds(values: Values) -> list[Manifest]:
    """The CRDs, labelled for the control-plane namespace."""
    return crds(values.control_plane_ns)


def render_install(
    values: Values, identity: IdentityMaterial, webhook: WebhookCert
) -> list[Manifest]:
    """The control plane: namespace, RBAC, configuration, secrets, workloads, webhook."""
    return [
        namespace(values),
        *rbac_objects(values),
        *control_plane_objects(values, identity, webhook),
    ]


def reference(obj: Manifest) -> Manifest:
    """Just enough of ``obj`` for ``kubectl delete -f``: apiVersion, kind, name, namespace."""
    meta: Manifest = {"name": obj["metadata"]["name"]}
    if "namespace" in obj["metadata"] and obj["kind"] not in CLUSTER_SCOPED_KINDS:
        meta["namespace"] = obj["metadata"]["namespace"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta}


def uninstall_objects(values: Values, crds: Iterable[str] | None = None) -> list[Manifest]:
    """References to everything install and ``install --crds`` create, in deletion order.

    ``crds`` limits the CRDs to those names (the ones the mesh created; see
    ``mesh.crds.ownership``); ``None`` names them all. The webhook goes first so
    no pod creation waits on a vanishing injector; namespaced objects go before
    their namespace and CRDs last.
    """
    placeholders = IdentityMaterial(b"", b"", b""), WebhookCert(b"", b"")
    wanted = None if crds is None else set(crds)
    ours = [c for c in render_crds(values) if wanted is None or c["metadata"]["name"] in wanted]
    objects = [*render_install(values, *placeholders), *ours]
    rank = {kind: i for i, kind in enumerate(_DELETE_ORDER)}
    ordered = sorted(objects, key=lambda o: rank.get(o["kind"], len(rank)))
    return [reference(o) for o in ordered]
