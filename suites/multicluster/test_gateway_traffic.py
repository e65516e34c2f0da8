"""Multicluster gateway mode: meshed traffic to a mirror crosses to the target's gateway.

Runs on flat and hierarchical topologies alike: on a hierarchical network the source
cannot reach the target's pods at all, so a 200 from the target's server can only have
come through the gateway. Every claim rests on evidence from three proxies: the
client's (mTLS to the gateway's identity), the gateway's (it forwarded the requests)
and the server's (it saw the gateway's identity, over mTLS), plus the server's own
answer naming its cluster and the client identity it saw.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import Workloads
from harness.adapters.promtext import Metrics
from harness.reporting import Evidence
from suites.mesh._support import (
    converge,
    deploy_server,
    pod_name,
    statuses,
    unmeshed_client,
)
from suites.multicluster._support import (
    eventually,
    gateway_addresses,
    gateway_pod,
    mirror,
)

SOURCE, TARGET = "source", "target"
REQUESTS = 40
GATEWAY_SA = "linkerd-gateway"


def _reaches(
    linked: Linked, cluster: str, ns: str, pod: str, what: str, enough: Callable[[Metrics], bool]
) -> Metrics:
    def check() -> Metrics:
        m = linked.mesh.metrics(cluster, ns, pod)
        assert enough(m), m.describe("request_total")
        return m

    return eventually(f"[{cluster}] {what} on the proxy of {ns}/{pod}", check)


def _exported_server(linked: Linked, ns: str) -> str:
    """A meshed server in the target, exported in gateway mode; its pod name."""
    (server,) = deploy_server(linked.mesh, ns, TARGET, name="server")
    linked.export(TARGET, ns, "server", "true")
    mirror(linked, SOURCE, ns, "server-target")
    return pod_name(server)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-gateway-mtls",
    description="A meshed source pod calling <svc>-<cluster> reaches the target service "
    "through the target's gateway over mTLS: the client's proxy talks mTLS to the gateway's "
    "identity, the gateway's proxy forwards every request, and the server answers from the "
    "target cluster having seen the gateway's identity as the client, over mTLS "
    "(CONF-19, CONF-33)",
    features=["multicluster", "multicluster-gateway", "injection", "mtls", "proxy-metrics"],
    profile="multicluster",
    conf=["CONF-19", "CONF-33"],
)
def test_meshed_traffic_crosses_through_the_gateway_over_mtls(
    linked: Linked, mc_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    ns = mc_namespace
    mesh = linked.mesh
    with evidence.step("deploy and export the server; start a meshed client in the source"):
        server = _exported_server(linked, ns)
        client = workloads.client(SOURCE)
    gateway_id = mesh.identity(TARGET, MC_NAMESPACE, GATEWAY_SA)
    server_id = mesh.identity(TARGET, ns, "server")
    url = f"http://server-target.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"
    with evidence.step("converge"):
        converge(client, url)
    result = client.run(url, REQUESTS, label=f"{SOURCE}/{client.pod} -> {url}")
    seen = statuses(result)
    assert seen == {"200": REQUESTS}, f"expected {REQUESTS} x 200 from {url}; saw {seen}"
    responders = {(r["responder"] or {}).get("cluster") for r in result["records"]}
    assert responders == {TARGET}, f"CONF-19: expected every answer from {TARGET}; saw {responders}"
    ids = {(r["responder"] or {}).get("client_id") for r in result["records"]}
    evidence.record("identities", {"client_id_seen_by_server": sorted(map(str, ids))})
    assert ids == {gateway_id}, (
        f"CONF-19: expected the server to see the gateway's identity {gateway_id} as the "
        f"client on every request; it saw {ids}"
    )

    at_server = _reaches(
        linked,
        TARGET,
        ns,
        server,
        f"{REQUESTS} mTLS requests from the gateway",
        lambda m: (
            m.sum("request_total", direction="inbound", tls="true", client_id=gateway_id)
            >= REQUESTS
        ),
    )
    at_client = _reaches(
        linked,
        SOURCE,
        ns,
        client.pod,
        f"{REQUESTS} mTLS requests to the gateway",
        lambda m: (
            m.sum("request_total", direction="outbound", tls="true", server_id=gateway_id)
            >= REQUESTS
        ),
    )
    gateway = gateway_pod(linked, TARGET)
    at_gateway = _reaches(
        linked,
        TARGET,
        MC_NAMESPACE,
        gateway,
        f"{REQUESTS} requests forwarded to {server_id}",
        lambda m: m.sum("request_total", tls="true", server_id=server_id) >= REQUESTS,
    )
    evidence.record(
        "metrics",
        {
            "server_inbound": at_server.describe("request_total", direction="inbound"),
            "client_outbound": at_client.describe("request_total", direction="outbound"),
            "gateway_to_server": at_gateway.describe("request_total", server_id=server_id),
        },
    )
    plain = at_client.sum("request_total", direction="outbound", tls="no_identity")
    assert plain == 0, (
        f"CONF-33: expected no plaintext outbound requests from the meshed client; "
        f"{at_client.describe('request_total', direction='outbound')}"
    )
    via_gateway = at_gateway.sum("request_total", tls="true", server_id=server_id)
    assert via_gateway >= REQUESTS, f"the gateway forwarded {via_gateway} < {REQUESTS}"


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-gateway-refuses-unmeshed",
    description="An unmeshed client cannot use the gateway: plaintext requests to the "
    "mirror and to the gateway's port never get an answer from the target service, while "
    "a meshed client in the same namespace succeeds (CONF-20)",
    features=["multicluster", "multicluster-gateway", "injection", "proxy-metrics"],
    profile="multicluster",
    conf=["CONF-20"],
)
def test_unmeshed_client_cannot_use_the_gateway(
    linked: Linked, mc_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    ns = mc_namespace
    server = _exported_server(linked, ns)
    meshed = workloads.client(SOURCE)
    plain = unmeshed_client(linked.kube[SOURCE], ns, evidence)
    mirror_url = f"http://server-target.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"
    with evidence.step("the gateway works for a meshed client"):
        converge(meshed, mirror_url)
    gateway_id = linked.mesh.identity(TARGET, MC_NAMESPACE, GATEWAY_SA)
    via_gateway = {"direction": "inbound", "client_id": gateway_id}
    before = linked.mesh.metrics(TARGET, ns, server).sum("request_total", **via_gateway)
    urls = [mirror_url] + [f"http://{ip}:4143/" for ip in gateway_addresses(linked, TARGET)]
    for url in urls:
        result = plain.run(url, 10, timeout=3, label=f"unmeshed {plain.pod} -> {url}")
        answered = [r for r in result["records"] if r["responder"] is not None]
        ok = [r for r in result["records"] if r["status"] is not None and r["status"] < 400]
        refused = not answered and not ok
        assert refused, (
            f"CONF-20: expected the gateway to refuse plaintext from unmeshed {plain.pod} at "
            f"{url}; statuses {statuses(result)}, answered by "
            f"{[r['responder'] for r in answered][:3]}"
        )
    after = linked.mesh.metrics(TARGET, ns, server)
    evidence.record("server_inbound", after.describe("request_total", direction="inbound"))
    assert after.sum("request_total", **via_gateway) == before, (
        f"CONF-20: the server's proxy counted requests from the gateway while only the "
        f"unmeshed client was calling: before {before}, now "
        f"{after.describe('request_total', **via_gateway)}"
    )
    gateway = linked.mesh.metrics(TARGET, MC_NAMESPACE, gateway_pod(linked, TARGET))
    evidence.record("gateway_refused", gateway.describe("inbound_gateway_refused_total"))
