"""Mesh: uninstall leaves nothing of the mesh in any cluster.

Disruptive and final: it runs after every other mesh test of the run (``mesh_alone``),
and afterwards the mesh is gone; whoever needs it next installs it again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from lightkube import ApiError
from lightkube.codecs import resource_registry
from lightkube.core.resource import NamespacedResource
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

from fixtures.mesh import Mesh
from harness.adapters import ObjectRef
from harness.kube import Kube, wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS

#: labels and name fragments that mark an object as the mesh's, whoever installed it.
MESH_LABELS = ("linkerd.io/control-plane-ns", "linkerd.io/control-plane-component")
MESH_NAME_FRAGMENT = "linkerd"
CLUSTER_KINDS = (
    CustomResourceDefinition,
    ClusterRole,
    ClusterRoleBinding,
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)


def _exists(k: Kube, ref: ObjectRef) -> bool:
    resource = resource_registry.load(ref.api_version, ref.kind)
    if resource is None:
        return False  # a kind the API no longer serves: its CRD is gone
    try:
        if issubclass(resource, NamespacedResource):
            k.client.get(resource, ref.name, namespace=ref.namespace)
        else:
            k.client.get(resource, ref.name)
    except ApiError as e:
        if e.status.code == 404:
            return False
        raise
    return True


def _wait_gone(k: Kube, namespace: str) -> None:
    def gone() -> bool | None:
        return True if not _exists(k, ObjectRef("v1", "Namespace", namespace)) else None

    wait_for(
        f"[{k.name}] namespace {namespace} deleted by uninstall",
        gone,
        TIMEOUTS.namespace_deleted,
        lambda: k.describe_pods(namespace),
    )


def _mesh_like(k: Kube, crd_groups: set[str]) -> list[str]:
    """Cluster-scoped objects that look like the mesh's, by label, name or CRD group."""
    found = []
    for kind in CLUSTER_KINDS:
        for obj in k.client.list(kind):
            meta = getattr(obj, "metadata", None)
            if meta is None or meta.name is None:
                continue
            labels = meta.labels or {}
            group = getattr(getattr(obj, "spec", None), "group", None)
            if (
                any(label in labels for label in MESH_LABELS)
                or MESH_NAME_FRAGMENT in meta.name
                or (kind is CustomResourceDefinition and group in crd_groups)
            ):
                found.append(f"{kind.__name__} {meta.name}")
    return found


@pytest.mark.mesh_disruptive(rank=2, uninstalls=True)
@pytest.mark.conformance(
    short_name="mesh-uninstall",
    description="Uninstalling removes everything the install applied - control-plane "
    "namespace, CRDs, cluster RBAC, webhook configuration - from every cluster (CONF-45)",
    features=["uninstall"],
    profile="mesh",
    conf=["CONF-45"],
)
def test_uninstall_leaves_nothing(mesh_alone: Mesh, evidence: Evidence) -> None:
    """(h) after uninstall no object of the mesh is left in any cluster."""
    mesh = mesh_alone
    recorded = {name: mesh.adapter.installed_objects(c) for name, c in mesh.clusters.items()}
    for name, refs in recorded.items():
        assert refs, f"[{name}] expected a record of what the install applied; it is empty"
        evidence.record("installed", {"cluster": name, "objects": [str(r) for r in refs]})
    with ThreadPoolExecutor(max_workers=len(mesh.clusters)) as pool:
        list(pool.map(mesh.adapter.uninstall, mesh.clusters.values()))
    for name, k in mesh.kube.items():
        for ns in mesh.adapter.control_plane_namespaces:
            _wait_gone(k, ns)
        left = [str(r) for r in recorded[name] if _exists(k, r)]
        assert not left, (
            f"[{name}] expected uninstall to remove everything install applied; left: {left}"
        )
        groups = {
            str(r.name).split(".", 1)[1]
            for r in recorded[name]
            if r.kind == "CustomResourceDefinition"
        }
        lookalikes = _mesh_like(k, groups)
        assert not lookalikes, (
            f"[{name}] expected no cluster-scoped object of the mesh after uninstall (by label "
            f"{MESH_LABELS}, name containing {MESH_NAME_FRAGMENT!r} or CRD group in "
            f"{sorted(groups)}); found: {lookalikes}"
        )
        namespaces = [n.metadata.name for n in k.client.list(Namespace) if n.metadata]
        assert not set(namespaces) & set(mesh.adapter.control_plane_namespaces), (
            f"[{name}] expected control-plane namespaces gone; namespaces: {namespaces}"
        )
