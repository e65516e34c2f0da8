"""Multicluster: a link's life - selectors, garbage collection, deleting a Link, unlink.

Each test makes a link of its own (``private_link``: ``source`` mirrors ``target``
under a fresh name, selecting only Services labelled ``isthmus.io/link=<that name>``),
so stopping, deleting or unlinking it disturbs no other test. Mirrors are named
``<svc>-<link name>``.
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.multicluster import MC_NAMESPACE, Linked
from harness.reporting import Evidence
from suites.multicluster._support import (
    LINK_LABEL,
    controller_pods,
    delete_link,
    delete_service,
    eventually,
    export_service,
    get,
    gone,
    link_path,
    mirror,
    patch_link,
    private_link,
    private_name,
    scale_controller,
    service,
    stays,
)

SOURCE, TARGET = "source", "target"
FEATURES = ["multicluster"]


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-gc-at-start",
    description="A mirror controller starting finds mirrors whose remote Service no longer "
    "exists and deletes them, keeping the others (CONF-13)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-13"],
)
def test_orphaned_mirrors_are_collected_when_the_controller_starts(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns, name = mc_namespace, private_name("gc")
    with private_link(linked, name, f"{LINK_LABEL}={name}"):
        for svc in ("keep", "drop"):
            export_service(linked, TARGET, ns, svc, key=LINK_LABEL, value=name)
            mirror(linked, SOURCE, ns, f"{svc}-{name}")
        with evidence.step("stop the controller, delete a remote Service, start it again"):
            scale_controller(linked, SOURCE, name, 0)
            delete_service(linked.kube[TARGET], ns, "drop")
            assert service(linked.kube[SOURCE], ns, f"drop-{name}") is not None, (
                "the mirror of drop vanished while its controller was stopped"
            )
            scale_controller(linked, SOURCE, name, 1)
        gone(linked, SOURCE, ns, f"drop-{name}")
        assert service(linked.kube[SOURCE], ns, f"keep-{name}") is not None, (
            f"CONF-13: the mirror keep-{name}, whose remote still exists, was deleted too"
        )


def _empty_selectors(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for doc in docs:
        if doc.get("kind") == "Link":
            doc["spec"]["selector"] = {}
            doc["spec"]["remoteDiscoverySelector"] = {}
    return docs


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-empty-selector",
    description="A Link whose selectors are empty mirrors nothing, even a Service the "
    "shared link (default selector) does mirror (CONF-16)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-16"],
)
def test_an_empty_selector_exports_nothing(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns, name = mc_namespace, private_name("empty")
    with private_link(linked, name, None, edit=_empty_selectors):
        link = get(linked.kube[SOURCE], link_path(name))
        assert link is not None
        evidence.record("link-spec", link["spec"])
        export_service(linked, TARGET, ns, "open")
        with evidence.step("the default-selector link mirrors it (the export is visible)"):
            mirror(linked, SOURCE, ns, f"open-{TARGET}")
        stays(
            f"no mirror open-{name} from the empty-selector link",
            lambda: service(linked.kube[SOURCE], ns, f"open-{name}") is None,
        )
        export_service(linked, TARGET, ns, "labelled", key=LINK_LABEL, value=name)
        stays(
            f"no mirror labelled-{name} from the empty-selector link",
            lambda: service(linked.kube[SOURCE], ns, f"labelled-{name}") is None,
        )


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-absent-selector",
    description="A Link that loses its selectors (the fields removed, so absent) stops "
    "exporting: the mirror its selector made is deleted and a Service exported afterwards "
    "is not mirrored (CONF-16)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-16"],
)
def test_an_absent_selector_exports_nothing(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns, name = mc_namespace, private_name("absent")
    src = linked.kube[SOURCE]
    with private_link(linked, name, f"{LINK_LABEL}={name}"):
        export_service(linked, TARGET, ns, "chosen", key=LINK_LABEL, value=name)
        with evidence.step("the Link's selector mirrors the Service"):
            mirror(linked, SOURCE, ns, f"chosen-{name}")
        with evidence.step("remove every selector from the Link"):
            patch_link(
                src,
                name,
                {
                    "spec": {
                        "selector": None,
                        "remoteDiscoverySelector": None,
                        "federatedServiceSelector": None,
                    }
                },
            )
        link = get(src, link_path(name))
        assert link is not None
        evidence.record("link-spec", link["spec"])
        left = [k for k in ("selector", "remoteDiscoverySelector") if k in link["spec"]]
        assert not left, f"the patch should have removed {left} from the Link"
        gone(linked, SOURCE, ns, f"chosen-{name}")
        export_service(linked, TARGET, ns, "later", key=LINK_LABEL, value=name)
        stays(
            f"no mirror later-{name} from the selector-less link",
            lambda: service(src, ns, f"later-{name}") is None,
        )


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-delete-link-keeps-mirrors",
    description="Deleting a Link stops mirroring (an unexport no longer removes the mirror) "
    "but keeps the mirrors it made (CONF-18)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-18"],
)
def test_deleting_a_link_stops_mirroring_and_keeps_mirrors(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns, name = mc_namespace, private_name("del")
    with private_link(linked, name, f"{LINK_LABEL}={name}"):
        export_service(linked, TARGET, ns, "kept", key=LINK_LABEL, value=name)
        export_service(linked, TARGET, ns, "gone-too", key=LINK_LABEL, value=name)
        mirror(linked, SOURCE, ns, f"kept-{name}")
        mirror(linked, SOURCE, ns, f"gone-too-{name}")
        names = [f"kept-{name}", f"gone-too-{name}"]

        def kept() -> bool:
            return all(service(linked.kube[SOURCE], ns, n) is not None for n in names)

        with evidence.step("delete the Link"):
            delete_link(linked.kube[SOURCE], name)
            # also the time the controller has to notice before the target changes
            stays(f"mirrors {names} kept after their Link was deleted", kept)
        with evidence.step("unexport and delete on the target"):
            from lightkube.resources.core_v1 import Service

            linked.kube[TARGET].client.patch(
                Service, "kept", {"metadata": {"labels": {LINK_LABEL: None}}}, namespace=ns
            )
            delete_service(linked.kube[TARGET], ns, "gone-too")
        stays(f"mirrors {names} kept: a deleted Link no longer mirrors changes", kept)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-unlink",
    description="multicluster unlink removes the link's mirrors, credentials Secret, RBAC, "
    "Link and mirror controller (CONF-18)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-18"],
)
def test_unlink_removes_mirrors_credentials_rbac_and_controller(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns, name = mc_namespace, private_name("un")
    src = linked.kube[SOURCE]
    with private_link(linked, name, f"{LINK_LABEL}={name}") as record:
        export_service(linked, TARGET, ns, "web", key=LINK_LABEL, value=name)
        mirror(linked, SOURCE, ns, f"web-{name}")
        evidence.record("applied", [str(r) for r in record.objects])
        linked.adapter.unlink(linked.clusters[SOURCE], name)
        gone(linked, SOURCE, ns, f"web-{name}")
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        paths = {
            "credentials Secret": f"/api/v1/namespaces/{MC_NAMESPACE}/secrets/"
            f"cluster-credentials-{name}",
            "Link": link_path(name),
            "controller Deployment": f"/apis/apps/v1/namespaces/{MC_NAMESPACE}/deployments/"
            f"linkerd-service-mirror-{name}",
            "controller ServiceAccount": f"/api/v1/namespaces/{MC_NAMESPACE}/serviceaccounts/"
            f"linkerd-service-mirror-{name}",
            "ClusterRole": f"{rbac}/clusterroles/linkerd-service-mirror-access-local-resources-"
            f"{name}",
            "ClusterRoleBinding": f"{rbac}/clusterrolebindings/"
            f"linkerd-service-mirror-access-local-resources-{name}",
            "Role": f"{rbac}/namespaces/{MC_NAMESPACE}/roles/"
            f"linkerd-service-mirror-read-remote-creds-{name}",
            "RoleBinding": f"{rbac}/namespaces/{MC_NAMESPACE}/rolebindings/"
            f"linkerd-service-mirror-read-remote-creds-{name}",
        }
        left = [what for what, path in paths.items() if get(src, path) is not None]
        assert not left, f"CONF-18: expected unlink to remove everything of {name}; left: {left}"

        def stopped() -> bool:
            pods = controller_pods(linked, SOURCE, name)
            assert not pods, f"controller pods still running: {pods}"
            return True

        eventually(f"CONF-18: the mirror controller of {name} stopped", stopped)
