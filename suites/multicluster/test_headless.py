"""Multicluster headless exports: a StatefulSet's pods are reachable one by one (CONF-29).

The target runs a meshed StatefulSet ``db`` (two pods) behind an exported headless
Service. The source must hold a headless mirror ``db-target`` plus a ClusterIP mirror
per pod (``db-0-target``, ``db-1-target``), and a meshed client there must reach pod
``db-0`` - and only it - by ``db-0.db-target.<ns>.svc.<source domain>``, through the
target's gateway. Scaling the StatefulSet down removes the per-host mirror of the pod
that went.
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.multicluster import Linked
from fixtures.workloads import MANIFESTS, Workloads
from harness.reporting import Evidence
from suites.mesh._support import converge, statuses
from suites.multicluster._support import (
    addresses,
    endpoints,
    eventually,
    gone,
    mirror,
    subsets,
)

SOURCE, TARGET = "source", "target"
HEADLESS_PARENT = "mirror.linkerd.io/headless-mirror-svc-name"
FQ_NAME = "mirror.linkerd.io/remote-svc-fq-name"
REQUESTS = 20


def _hostnames(eps: dict[str, Any]) -> dict[str, str]:
    return {
        str(a.get("hostname")): a["ip"]
        for s in subsets(eps)
        for key in ("addresses", "notReadyAddresses")
        for a in s.get(key) or []
    }


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-headless-statefulset",
    description="A headless export whose endpoints have hostnames (a StatefulSet) becomes a "
    "headless mirror <svc>-<cluster> plus one ClusterIP mirror <host>-<cluster> per pod, "
    "the headless mirror's Endpoints naming each per-host cluster IP by hostname; a meshed "
    "client reaches exactly that pod at <pod>.<svc>-<cluster>.<ns>.svc.<local domain>; a "
    "pod scaled away takes its per-host mirror (CONF-29)",
    features=["multicluster", "multicluster-gateway", "injection"],
    profile="multicluster",
    conf=["CONF-29"],
)
def test_a_statefulset_pod_is_reachable_through_its_per_host_mirror(
    linked: Linked, mc_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    ns = mc_namespace
    src, tgt = linked.kube[SOURCE], linked.kube[TARGET]
    with evidence.step("a meshed StatefulSet db (2 pods) behind an exported headless Service"):
        tgt.apply(
            (MANIFESTS / "mc-statefulset.yaml").read_text(),
            namespace=ns,
            name="db",
            replicas="2",
            cluster=TARGET,
        )
        for pod in ("db-0", "db-1"):
            tgt.wait_pod_ready(pod, ns)
        client = workloads.client(SOURCE)
    domain = linked.clusters[TARGET].domain
    parent = mirror(linked, SOURCE, ns, "db-target")
    assert parent["spec"].get("clusterIP") == "None", (
        f"CONF-29: expected the mirror of a headless Service to be headless; "
        f"clusterIP {parent['spec'].get('clusterIP')}"
    )
    ips: dict[str, str] = {}
    for host in ("db-0", "db-1"):
        per_host = mirror(linked, SOURCE, ns, f"{host}-target")
        evidence.record(f"mirror-{host}", per_host)
        annotations = per_host["metadata"].get("annotations") or {}
        assert annotations.get(HEADLESS_PARENT) == "db-target", (
            f"CONF-29: {host}-target should name its parent db-target; {annotations}"
        )
        assert annotations.get(FQ_NAME) == f"{host}.db.{ns}.svc.{domain}", (
            f"CONF-29: {host}-target remote name {annotations.get(FQ_NAME)}"
        )
        ip = per_host["spec"].get("clusterIP")
        assert ip not in (None, "", "None"), f"CONF-29: {host}-target has no cluster IP: {ip}"
        ips[host] = str(ip)

    def named() -> dict[str, Any]:
        eps = endpoints(src, ns, "db-target")
        assert eps is not None, "no Endpoints db-target"
        assert _hostnames(eps) == ips, f"hostname -> IP {_hostnames(eps)}, expected {ips}"
        return eps

    eps = eventually(f"[{SOURCE}] db-target Endpoints name the per-host mirrors", named)
    evidence.record("headless-endpoints", eps)

    url = f"http://db-0.db-target.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"
    with evidence.step(f"converge on {url}"):
        converge(client, url)
    result = client.run(url, REQUESTS, label=f"{SOURCE}/{client.pod} -> {url}")
    seen = statuses(result)
    assert seen == {"200": REQUESTS}, f"expected {REQUESTS} x 200 from {url}; saw {seen}"
    pods = {(r["responder"] or {}).get("pod") for r in result["records"]}
    clusters = {(r["responder"] or {}).get("cluster") for r in result["records"]}
    evidence.record(
        "responders", {"pods": sorted(map(str, pods)), "clusters": sorted(map(str, clusters))}
    )
    assert pods == {"db-0"}, f"CONF-29: expected every answer from pod db-0; saw {pods}"
    assert clusters == {TARGET}, f"CONF-29: expected answers from {TARGET}; saw {clusters}"

    with evidence.step("scale db to one pod"):
        from lightkube.resources.apps_v1 import StatefulSet

        tgt.client.patch(StatefulSet, "db", {"spec": {"replicas": 1}}, namespace=ns)
    gone(linked, SOURCE, ns, "db-1-target")

    def one_host() -> bool:
        now = endpoints(src, ns, "db-target")
        assert now is not None
        assert sorted(_hostnames(now)) == ["db-0"], f"hostnames {sorted(_hostnames(now))}"
        assert addresses(now) == [ips["db-0"]], f"addresses {addresses(now)}"
        return True

    eventually(f"[{SOURCE}] db-target lists db-0 alone", one_host)
