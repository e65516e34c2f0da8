"""Multicluster: what a mirror of an exported Service looks like, and how it follows the remote.

Every test runs on the shared links (``linked``): ``source`` mirrors ``target`` under
the link ``target``. Each test exports Services in its own namespace (present in every
cluster), so tests do not see each other's mirrors.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fixtures.multicluster import MC_NAMESPACE, Linked
from harness.adapters.multicluster import link_status_entries
from harness.reporting import Evidence
from suites.mesh._support import deploy_server
from suites.multicluster._support import (
    CLUSTER_NAME,
    FQ_NAME,
    GATEWAY_IDENTITY,
    MIRRORED,
    REMOTE_RV,
    addresses,
    delete_service,
    endpoints,
    eventually,
    export_service,
    gateway_addresses,
    gone,
    mirror,
    service,
    stays,
    subsets,
)

FEATURES = ["multicluster", "injection"]
SOURCE, TARGET = "source", "target"


def _port_view(svc: dict[str, Any]) -> list[tuple[object, ...]]:
    spec = svc["spec"]
    assert isinstance(spec, dict)
    return [
        (p.get("name"), p.get("protocol"), p.get("port"), p.get("targetPort"))
        for p in spec.get("ports") or []
    ]


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-mirror-shape",
    description="An exported Service appears in the source as <svc>-<cluster> in the same "
    "namespace (CONF-1) labelled mirrored-service/cluster-name (CONF-2), annotated with its "
    "remote fq name (CONF-3) and remote resourceVersion (CONF-4); same ports, no nodePort, "
    "no selector, a local ClusterIP (CONF-5); mirror.linkerd.io/ labels and topology hints "
    "not copied, other labels/annotations copied (CONF-6, CONF-7); Endpoints list the "
    "gateway addresses sorted with each port renamed to the gateway port and the gateway "
    "identity (CONF-8); the Link status lists it Mirrored=True with its local ref (CONF-15)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-1", "CONF-2", "CONF-3", "CONF-4", "CONF-5", "CONF-6", "CONF-7", "CONF-8",
          "CONF-15"],
)  # fmt: skip
def test_exported_service_is_mirrored_as_linkerd_does(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    src, tgt = linked.kube[SOURCE], linked.kube[TARGET]
    with evidence.step("deploy a server and export a Service for it in the target"):
        deploy_server(linked.mesh, ns, TARGET, name="web")
        remote = export_service(linked, TARGET, ns, "shop", app="web")
    with evidence.step("wait for the mirror"):
        got = mirror(linked, SOURCE, ns, "shop-target")
    evidence.record("mirror", got)
    meta = got["metadata"]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    domain = linked.clusters[TARGET].domain

    assert labels.get(MIRRORED) == "true" and labels.get(CLUSTER_NAME) == TARGET, (  # noqa: PT018
        f"CONF-2: expected labels {MIRRORED}=true and {CLUSTER_NAME}={TARGET}; saw {labels}"
    )
    assert annotations.get(FQ_NAME) == f"shop.{ns}.svc.{domain}", (
        f"CONF-3: expected {FQ_NAME}=shop.{ns}.svc.{domain}; saw {annotations.get(FQ_NAME)}"
    )
    remote_now = service(tgt, ns, "shop")
    assert remote_now is not None
    assert annotations.get(REMOTE_RV) == remote_now["metadata"]["resourceVersion"], (
        f"CONF-4: expected {REMOTE_RV}={remote_now['metadata']['resourceVersion']} (the "
        f"remote's); saw {annotations.get(REMOTE_RV)}"
    )
    assert _port_view(got) == _port_view(remote), (
        f"CONF-5: expected the remote ports {_port_view(remote)}; saw {_port_view(got)}"
    )
    spec = got["spec"]
    assert not spec.get("selector"), f"CONF-5: expected no selector; saw {spec.get('selector')}"
    node_ports = [p.get("nodePort") for p in spec["ports"] if p.get("nodePort")]
    assert not node_ports, f"CONF-5: expected no nodePort; saw {node_ports}"
    cidr = ipaddress.ip_network(linked.clusters[SOURCE].service_cidr)
    cluster_ip = spec.get("clusterIP")
    allocated = cluster_ip not in (None, "", "None") and ipaddress.ip_address(cluster_ip) in cidr
    assert allocated, (
        f"CONF-5: expected a ClusterIP from the source's service CIDR {cidr}; saw {cluster_ip}"
    )
    for key in ("app", "tier", "team.example/owner", "drop-me"):
        assert labels.get(key) == remote["metadata"]["labels"][key], (
            f"CONF-6: expected remote label {key} copied; mirror labels {labels}"
        )
    copied_mirror_keys = [k for k in labels if k.startswith("mirror.linkerd.io/")]
    assert set(copied_mirror_keys) == {MIRRORED, CLUSTER_NAME}, (
        f"CONF-6: expected no remote mirror.linkerd.io/ label copied (exported, custom); "
        f"the mirror has {copied_mirror_keys}"
    )
    assert annotations.get("example.com/note") == "copied", (
        f"CONF-6: expected annotation example.com/note copied; saw {annotations}"
    )
    hints = [a for a in annotations if a.startswith("service.kubernetes.io/topology")]
    assert not hints, f"CONF-7: expected no topology-hint annotations; the mirror has {hints}"

    link = linked.link_object(SOURCE, TARGET)
    assert link is not None, f"no Link {TARGET} in {MC_NAMESPACE} of {SOURCE}"
    link_spec = link["spec"]
    want_addresses = sorted(str(link_spec["gatewayAddress"]).split(","))
    assert want_addresses == gateway_addresses(linked, TARGET), (
        f"the Link's gatewayAddress {want_addresses} should be the target gateway's "
        f"load-balancer addresses {gateway_addresses(linked, TARGET)}"
    )
    port = int(link_spec["gatewayPort"])

    def filled() -> dict[str, Any]:
        eps = endpoints(src, ns, "shop-target")
        assert eps is not None, "no mirror Endpoints yet"
        assert addresses(eps) == want_addresses, (
            f"addresses {addresses(eps)}, expected {want_addresses}"
        )
        return eps

    eps = eventually(f"[{SOURCE}] Endpoints {ns}/shop-target list the gateway", filled)
    evidence.record("endpoints", eps)
    ports = sorted((p.get("name"), p.get("port")) for s in subsets(eps) for p in s["ports"])
    assert ports == [("http", port), ("tcp-hello", port)], (
        f"CONF-8: expected each service port renamed to the gateway port {port}; saw {ports}"
    )
    eps_ann = eps["metadata"].get("annotations") or {}
    gateway_id = linked.mesh.identity(TARGET, MC_NAMESPACE, "linkerd-gateway")
    assert eps_ann.get(GATEWAY_IDENTITY) == link_spec["gatewayIdentity"] == gateway_id, (
        f"CONF-8: expected {GATEWAY_IDENTITY}={gateway_id} (= Link gatewayIdentity "
        f"{link_spec['gatewayIdentity']}); saw {eps_ann.get(GATEWAY_IDENTITY)}"
    )
    assert eps_ann.get(FQ_NAME) == f"shop.{ns}.svc.{domain}", (
        f"CONF-8: expected the Endpoints annotated {FQ_NAME}; saw {eps_ann}"
    )

    def mirrored_in_status() -> dict[str, Any]:
        current = linked.link_object(SOURCE, TARGET) or {}
        entries = link_status_entries(current, ["shop", "shop-target"], ns)
        assert entries, f"the Link status lists nothing for {ns}/shop: {current.get('status')}"
        return entries[0]

    entry = eventually("Link status lists the mirrored service", mirrored_in_status)
    evidence.record("link-status-entry", entry)
    conditions = {c.get("type"): c for c in entry["conditions"]}
    assert conditions.get("Mirrored", {}).get("status") == "True", (
        f"CONF-15: expected condition Mirrored=True; saw {entry}"
    )
    holders = [entry, *entry["conditions"]]  # Linkerd puts localRef in the condition
    local_refs = [v for h in holders for k, v in h.items() if k.lower().startswith("local")]
    assert any(isinstance(r, dict) and r.get("name") == "shop-target" for r in local_refs), (
        f"CONF-15: expected a local reference to shop-target; saw {entry}"
    )


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-mirror-resource-version",
    description="The mirror's remote-resource-version follows the remote's resourceVersion; "
    "the mirror is not written while the remote does not change, and is updated when it "
    "does (CONF-4)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-4"],
)
def test_mirror_is_updated_only_when_the_remote_changes(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    src, tgt = linked.kube[SOURCE], linked.kube[TARGET]
    export_service(linked, TARGET, ns, "quiet")
    first = mirror(linked, SOURCE, ns, "quiet-target")
    version = first["metadata"]["resourceVersion"]

    def unchanged() -> bool:
        now = service(src, ns, "quiet-target")
        return now is not None and now["metadata"]["resourceVersion"] == version

    stays(f"mirror {ns}/quiet-target unchanged while the remote is unchanged", unchanged)
    with evidence.step("change an annotation on the remote"):
        from lightkube.resources.core_v1 import Service

        tgt.client.patch(
            Service,
            "quiet",
            {"metadata": {"annotations": {"example.com/note": "changed"}}},
            namespace=ns,
        )
    remote = service(tgt, ns, "quiet")
    assert remote is not None
    remote_version = remote["metadata"]["resourceVersion"]

    def updated() -> dict[str, Any]:
        now = service(src, ns, "quiet-target")
        assert now is not None, "mirror gone"
        ann = now["metadata"].get("annotations") or {}
        assert ann.get(REMOTE_RV) == remote_version, (
            f"{REMOTE_RV}={ann.get(REMOTE_RV)}, remote is {remote_version}"
        )
        assert ann.get("example.com/note") == "changed", f"annotations {ann}"
        return now

    eventually("the mirror follows the remote's new resourceVersion", updated)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-mirror-empty-endpoints",
    description="A remote Service without ready endpoints gives mirror Endpoints with no "
    "subsets; they fill in with the gateway addresses once the remote is ready (CONF-9)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-9"],
)
def test_mirror_endpoints_are_empty_until_the_remote_is_ready(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    src = linked.kube[SOURCE]
    export_service(linked, TARGET, ns, "later", app="later-app")
    mirror(linked, SOURCE, ns, "later-target")
    eps = eventually(
        f"[{SOURCE}] Endpoints {ns}/later-target", lambda: endpoints(src, ns, "later-target")
    )

    def empty() -> bool:
        now = endpoints(src, ns, "later-target")
        return now is not None and not subsets(now)

    assert empty(), f"CONF-9: expected no subsets while the remote has no endpoints; saw {eps}"
    stays("mirror Endpoints stay empty while the remote has no endpoints", empty)
    with evidence.step("start the remote's pods"):
        deploy_server(linked.mesh, ns, TARGET, name="later-app")
    want = gateway_addresses(linked, TARGET)

    def filled() -> dict[str, Any]:
        now = endpoints(src, ns, "later-target")
        assert now is not None, "mirror Endpoints gone"
        assert addresses(now) == want, f"addresses {addresses(now)}, expected {want}"
        return now

    evidence.record("endpoints", eventually("mirror Endpoints fill in", filled))


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-mirror-deletion",
    description="Removing the export label, or deleting the remote Service, deletes the "
    "mirror and its Endpoints (CONF-12)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-12"],
)
def test_unexport_or_remote_deletion_removes_the_mirror(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    export_service(linked, TARGET, ns, "one")
    export_service(linked, TARGET, ns, "two")
    mirror(linked, SOURCE, ns, "one-target")
    mirror(linked, SOURCE, ns, "two-target")
    with evidence.step("remove the export label from one"):
        linked.export(TARGET, ns, "one", None)
    gone(linked, SOURCE, ns, "one-target")
    with evidence.step("delete the remote Service two"):
        delete_service(linked.kube[TARGET], ns, "two")
    gone(linked, SOURCE, ns, "two-target")


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-missing-namespace",
    description="A Service exported from a namespace the source lacks is skipped with Link "
    "status reason MissingNamespace; creating the namespace makes the mirror appear "
    "(CONF-14)",
    features=[*FEATURES, "multicluster-status"],
    profile="multicluster",
    conf=["CONF-14"],
)
def test_missing_namespace_is_reported_then_mirrored(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    only = f"{mc_namespace[:50]}-t"
    src, tgt = linked.kube[SOURCE], linked.kube[TARGET]
    tgt.create_namespace(only, labels={"isthmus.io/test": "true"})
    try:
        export_service(linked, TARGET, only, "lonely")

        def reported() -> dict[str, Any]:
            link = linked.link_object(SOURCE, TARGET) or {}
            entries = link_status_entries(link, ["lonely", "lonely-target"], only)
            reasons = [c.get("reason") for e in entries for c in e["conditions"]]
            assert "MissingNamespace" in reasons, (
                f"Link status for {only}/lonely: {entries or 'nothing'}"
            )
            return entries[0]

        entry = eventually("Link status reason MissingNamespace", reported)
        evidence.record("link-status-entry", entry)
        assert service(src, only, "lonely-target") is None
        with evidence.step("create the namespace in the source"):
            src.create_namespace(only, labels={"isthmus.io/test": "true"})
        mirror(linked, SOURCE, only, "lonely-target")
    finally:
        for k in (src, tgt):
            k.delete_namespace(only, wait=False)
        for k in (src, tgt):
            k.delete_namespace(only, wait=True)
