"""Multicluster: unlink every shared link, then uninstall the extension; nothing is left.

Disruptive and final for the multicluster suite (``mesh_disruptive``: after every other
test of the run that uses the mesh, before the mesh's own uninstall); afterwards the
links are forgotten, so whoever needs them next makes them again.
"""

from __future__ import annotations

import pytest

from fixtures.mesh import Mesh
from fixtures.multicluster import MC_NAMESPACE, Linked, forget_links
from harness.adapters import ObjectRef
from harness.kube import Kube
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.multicluster._support import eventually, get, link_path, mirrors_of

#: API paths of the kinds the extension installs (kind -> collection path format).
PATHS = {
    "Namespace": "/api/v1/namespaces/{name}",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
    "Secret": "/api/v1/namespaces/{ns}/secrets/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{name}",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{name}",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
}


def _key(ref: ObjectRef) -> tuple[str, str, str | None]:
    return ref.kind, ref.name, ref.namespace


def _exists(k: Kube, ref: ObjectRef) -> bool:
    path = PATHS.get(ref.kind)
    assert path is not None, f"no API path known for {ref}; add its kind to PATHS"
    return get(k, path.format(ns=ref.namespace, name=ref.name)) is not None


@pytest.mark.requires(clusters=2)
@pytest.mark.mesh_disruptive(rank=0)
@pytest.mark.conformance(
    short_name="mc-unlink-and-uninstall",
    description="unlink removes each shared link's mirrors and Link (CONF-18); "
    "multicluster uninstall prints every object multicluster install applied, and "
    "deleting it leaves none of them (CONF-45)",
    features=["multicluster", "multicluster-uninstall"],
    profile="multicluster",
    conf=["CONF-18", "CONF-45"],
)
def test_unlink_and_uninstall_leave_nothing(
    mesh_alone: Mesh, linked: Linked, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    forget_links(request.config)  # whatever happens below, the links are not to be trusted
    for link in linked.links:
        with evidence.step(f"unlink {link.name} from {link.source}"):
            linked.adapter.unlink(linked.clusters[link.source], link.name)

        def no_mirrors(link_source: str = link.source, name: str = link.name) -> bool:
            left = [m["metadata"]["name"] for m in mirrors_of(linked, link_source, name)]
            assert not left, f"mirrors left: {left}"
            return True

        eventually(f"CONF-18: no mirror of {link.name} left in {link.source}", no_mirrors)
        assert get(linked.kube[link.source], link_path(link.name)) is None, (
            f"CONF-18: Link {link.name} still present in {link.source} after unlink"
        )
    for name, cluster in linked.clusters.items():
        k = linked.kube[name]
        installed = linked.adapter.multicluster_installed_objects(cluster)
        printed = {_key(r) for r in linked.adapter.multicluster_uninstall_objects(cluster)}
        evidence.record("installed", {"cluster": name, "objects": [str(r) for r in installed]})
        missing = [str(r) for r in installed if _key(r) not in printed]
        assert not missing, (
            f"[{name}] CONF-45: multicluster uninstall does not print these installed "
            f"objects: {missing}"
        )
        with evidence.step(f"multicluster uninstall on {name}"):
            linked.adapter.multicluster_uninstall(cluster)

        def nothing_left(k: Kube = k, installed: list[ObjectRef] = installed) -> bool:
            left = [str(r) for r in installed if _exists(k, r)]
            assert not left, f"left: {left}"
            return True

        eventually(
            f"[{name}] CONF-45: everything multicluster install applied is gone",
            nothing_left,
            TIMEOUTS.namespace_deleted,
        )
        assert get(k, f"/api/v1/namespaces/{MC_NAMESPACE}") is None
