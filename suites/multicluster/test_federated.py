"""Multicluster federated services: ``<svc>-federated`` follows its members (CONF-28).

A Service labelled ``mirror.linkerd.io/federated=member`` in a linked cluster or in the
source itself makes the source's mirror controllers keep ``<svc>-federated``: annotated
with every remote member (``svc@cluster``, sorted) and the local one, without Endpoints,
carrying the oldest member's labels and ports, and gone with its last member; a link's
entries leave with the link (its Link deleted, or unlinked). On
``two-flat`` the members are in ``target`` and ``source``; on ``three-flat`` a second
link (``source`` mirrors ``west``) shows two controllers sharing one object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from lightkube.resources.core_v1 import Service as ServiceResource

from fixtures.multicluster import Linked
from fixtures.workloads import Workloads
from harness.kube import Kube
from harness.reporting import Evidence
from suites.mesh._support import deploy_server, statuses
from suites.multicluster._support import (
    delete_link,
    delete_service,
    endpoints,
    eventually,
    export_service,
    gone,
    private_link,
    private_name,
    service,
    subsets,
)

SOURCE, TARGET = "source", "target"
FEATURES = ["multicluster"]
FEDERATED = "mirror.linkerd.io/federated"
REMOTE_DISCOVERY = "multicluster.linkerd.io/remote-discovery"
LOCAL_DISCOVERY = "multicluster.linkerd.io/local-discovery"
MIRRORED = "mirror.linkerd.io/mirrored-service"
TRAFFIC_REQUESTS = 30

LOCAL_MEMBER = """
apiVersion: v1
kind: Service
metadata:
  name: $name
  labels: {app: $name, variant: local, mirror.linkerd.io/federated: member}
  annotations: {example.com/origin: local}
spec:
  selector: {app: $name}
  ports:
  - {name: admin, port: 7000, targetPort: 7000, protocol: TCP}
"""


def _annotations(svc: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = svc["metadata"].get("annotations") or {}
    return found


def _labels(svc: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = svc["metadata"].get("labels") or {}
    return found


def _ports(svc: dict[str, Any]) -> list[tuple[object, object]]:
    return sorted((p.get("name"), p.get("port")) for p in svc["spec"].get("ports") or [])


def federated(
    kube: Kube, ns: str, name: str, remote: str | None, local: str | None
) -> dict[str, Any]:
    """``<name>-federated`` once its discovery annotations are exactly ``remote``/``local``."""

    def check() -> dict[str, Any]:
        svc = service(kube, ns, f"{name}-federated")
        assert svc is not None, f"no Service {ns}/{name}-federated"
        seen = _annotations(svc)
        got = (seen.get(REMOTE_DISCOVERY), seen.get(LOCAL_DISCOVERY))
        assert got == (remote, local), (
            f"(remote, local) discovery {got}, expected {(remote, local)}"
        )
        return svc

    return eventually(f"[{kube.name}] {ns}/{name}-federated with {remote=} {local=}", check)


def no_endpoints(kube: Kube, ns: str, name: str) -> None:
    eps = endpoints(kube, ns, name)
    assert eps is None or not subsets(eps), f"CONF-28: expected no Endpoints for {name}; saw {eps}"


def after_created(kube: Kube, svc: dict[str, Any]) -> None:
    """Wait until the API server's clock is past ``svc``'s creation second, so a Service
    made next is strictly younger (creation timestamps have one-second resolution)."""
    created = datetime.strptime(svc["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )

    def later() -> bool:
        date = kube.http.get("/version").headers.get("date", "")
        assert date, "the API server sent no Date header"
        now = parsedate_to_datetime(date)
        assert now > created, f"server time {now} not yet past {created}"
        return True

    eventually(f"[{kube.name}] the clock passes {created}", later)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-federated-service",
    description="Members labelled mirror.linkerd.io/federated=member in the target and in "
    "the source produce <svc>-federated in the source annotated remote-discovery=svc@target "
    "and local-discovery=svc, with no Endpoints, carrying the oldest member's labels, "
    "annotations and ports; when the oldest leaves the next oldest's metadata takes over, "
    "and the Service is deleted with its last member (CONF-28: the object; traffic is "
    "mc-federated-traffic)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-28"],
)
def test_federated_service_follows_its_members(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    src, tgt = linked.kube[SOURCE], linked.kube[TARGET]
    with evidence.step("a member in the target"):
        remote = export_service(linked, TARGET, ns, "fed", key=FEDERATED, value="member")
    first = federated(src, ns, "fed", "fed@target", None)
    evidence.record("federated-remote-only", first)
    assert _labels(first).get(MIRRORED) == "true", (
        f"CONF-28: expected {MIRRORED}=true (never exported again); labels {_labels(first)}"
    )
    assert _labels(first).get("tier") == "backend", f"target's labels expected: {_labels(first)}"
    assert FEDERATED not in _labels(first), "the member label must not be copied"
    assert _ports(first) == _ports(remote), f"ports {_ports(first)}, target's {_ports(remote)}"
    assert not first["spec"].get("selector"), "CONF-28: a federated Service has no selector"
    no_endpoints(src, ns, "fed-federated")

    with evidence.step("a younger member in the source itself"):
        after_created(tgt, remote)
        src.apply(LOCAL_MEMBER, namespace=ns, name="fed")
    both = federated(src, ns, "fed", "fed@target", "fed")
    evidence.record("federated-both", both)
    assert _labels(both).get("variant") is None, (
        f"CONF-28: metadata must stay the oldest member's (the target's); labels {_labels(both)}"
    )
    assert _ports(both) == _ports(remote), f"ports {_ports(both)}, oldest's {_ports(remote)}"
    no_endpoints(src, ns, "fed-federated")

    with evidence.step("the oldest member leaves"):
        delete_service(tgt, ns, "fed")

    def local_metadata() -> dict[str, Any]:
        svc = federated(src, ns, "fed", None, "fed")
        assert _labels(svc).get("variant") == "local", f"labels {_labels(svc)}"
        assert _ports(svc) == [("admin", 7000)], f"ports {_ports(svc)}"
        return svc

    left = eventually("the local member's metadata on fed-federated", local_metadata)
    evidence.record("federated-local-only", left)
    assert _annotations(left).get("example.com/origin") == "local"

    with evidence.step("the last member leaves"):
        delete_service(src, ns, "fed")
    gone(linked, SOURCE, ns, "fed-federated")


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-federated-link-leaves",
    description="A target member federated by two links (the shared one and a link of the "
    "test's own) is annotated svc@target,svc@<link>; deleting the Link object while its "
    "controller runs, and multicluster unlink of another link (controller deleted first), "
    "each take that link's entry out and leave the shared link's (CONF-28: the member list "
    "follows the links)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-28"],
)
def test_a_links_entries_leave_with_the_link(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    src = linked.kube[SOURCE]
    try:
        for how in ("Link deleted", "unlinked"):
            name = private_name("fedlk")
            with private_link(linked, name, None):
                with evidence.step(f"a target member federated by the links target and {name}"):
                    if how == "Link deleted":
                        export_service(linked, TARGET, ns, "fed4", key=FEDERATED, value="member")
                    both = ",".join(sorted(["fed4@target", f"fed4@{name}"]))
                    evidence.record(
                        f"federated-{how}-before", federated(src, ns, "fed4", both, None)
                    )
                if how == "Link deleted":
                    with evidence.step(f"delete the Link {name} (its controller keeps running)"):
                        delete_link(src, name)
                    after = federated(src, ns, "fed4", "fed4@target", None)
                    evidence.record(f"federated-{how}-after", after)
            if how == "unlinked":
                after = federated(src, ns, "fed4", "fed4@target", None)
                evidence.record(f"federated-{how}-after", after)
            no_endpoints(src, ns, "fed4-federated")
    finally:
        delete_service(linked.kube[TARGET], ns, "fed4")
    gone(linked, SOURCE, ns, "fed4-federated")


@pytest.mark.requires(clusters=3)
@pytest.mark.conformance(
    short_name="mc-federated-three-clusters",
    description="With the source linked to two clusters, members in both make one "
    "<svc>-federated annotated with both (sorted), written by two mirror controllers "
    "without losing either's entry; it shrinks as members leave and is deleted with the "
    "last (CONF-28: the object, on three clusters)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-28"],
)
def test_two_links_share_one_federated_service(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    src = linked.kube[SOURCE]
    name = private_name("west")
    with private_link(linked, name, None, source=SOURCE, target="west"):
        with evidence.step("members in target and west, created together"):
            export_service(linked, "west", ns, "fed3", key=FEDERATED, value="member")
            export_service(linked, TARGET, ns, "fed3", key=FEDERATED, value="member")
        both = ",".join(sorted(["fed3@target", f"fed3@{name}"]))
        got = federated(src, ns, "fed3", both, None)
        evidence.record("federated", got)
        no_endpoints(src, ns, "fed3-federated")
        with evidence.step("the west member leaves"):
            delete_service(linked.kube["west"], ns, "fed3")
        federated(src, ns, "fed3", "fed3@target", None)
        with evidence.step("the target member leaves"):
            delete_service(linked.kube[TARGET], ns, "fed3")
        gone(linked, SOURCE, ns, "fed3-federated")


@pytest.mark.requires(clusters=2, network="flat")
@pytest.mark.conformance(
    short_name="mc-federated-traffic",
    description="A meshed source client calling <svc>-federated reaches every member: the "
    "source's own and the target's, pod to pod (CONF-28: traffic)",
    features=["multicluster", "remote-discovery", "injection"],
    profile="multicluster",
    conf=["CONF-28"],
)
def test_federated_traffic_reaches_every_member_cluster(
    linked: Linked, mc_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    ns = mc_namespace
    with evidence.step("a meshed member server in the source and in the target"):
        for cluster in (SOURCE, TARGET):
            deploy_server(linked.mesh, ns, cluster, name="fedweb")
            linked.kube[cluster].client.patch(
                ServiceResource,
                "fedweb",
                {"metadata": {"labels": {FEDERATED: "member"}}},
                namespace=ns,
            )
        client = workloads.client(SOURCE)
    federated(linked.kube[SOURCE], ns, "fedweb", "fedweb@target", "fedweb")
    url = f"http://fedweb-federated.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"

    def both() -> set[str]:
        result = client.run(url, TRAFFIC_REQUESTS, label=f"{SOURCE}/{client.pod} -> {url}")
        seen = statuses(result)
        assert seen == {"200": TRAFFIC_REQUESTS}, f"statuses {seen}"
        clusters = {str((r["responder"] or {}).get("cluster")) for r in result["records"]}
        assert clusters == {SOURCE, TARGET}, f"answers came from {sorted(clusters)}"
        return clusters

    with evidence.step(f"{TRAFFIC_REQUESTS} requests to {url} answered by both clusters"):
        clusters = eventually(f"answers to {url} from {SOURCE} and {TARGET}", both)
    evidence.record("responder-clusters", sorted(clusters))
