"""Mesh: meshed pods talk mTLS with each other's identities; unmeshed clients still get in."""

from __future__ import annotations

import pytest

from fixtures.mesh import Mesh
from fixtures.workloads import Workloads
from harness.adapters.promtext import Metrics
from harness.kube import wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import (
    assert_meshed,
    converge,
    deploy_server,
    pod_name,
    service_url,
    statuses,
    unmeshed_client,
)

#: requests of each measured run.
REQUESTS = 50


def _wait_metric(
    mesh: Mesh, cluster: str, namespace: str, pod: str, at_least: float, metric: str, **labels: str
) -> Metrics:
    """The pod's proxy metrics once ``metric{labels}`` sums to ``at_least`` or more."""
    seen: list[Metrics] = []

    def reached() -> Metrics | None:
        m = mesh.metrics(cluster, namespace, pod)
        seen[:] = [m]
        return m if m.sum(metric, **labels) >= at_least else None

    return wait_for(
        f"[{cluster}] {metric}{labels} >= {at_least:g} on the proxy of {namespace}/{pod}",
        reached,
        TIMEOUTS.convergence,
        lambda: (
            seen[0].describe(metric, direction=labels.get("direction", ""))
            if seen
            else "no metrics"
        ),
    )


@pytest.mark.conformance(
    short_name="mesh-mtls-identity",
    description="A meshed client calling a meshed server through its Service gets 100% "
    "success over mTLS: the server sees the client's workload identity (ending with the "
    "trust domain) and both proxies count the requests as tls=true with the peer's "
    "identity (CONF-30, CONF-33)",
    features=["injection", "mtls", "proxy-metrics"],
    profile="mesh",
    conf=["CONF-30", "CONF-33"],
)
def test_meshed_client_and_server_use_mtls_identities(
    mesh: Mesh, meshed_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    """(b) meshed client -> Service -> meshed server: 100% success, identities on both sides."""
    c, ns = mesh.primary, meshed_namespace
    k = mesh.kube[c]
    with evidence.step("deploy the meshed server and client"):
        (server,) = deploy_server(mesh, ns, c, replicas=1)
        client = workloads.client(c)
    server_pod = pod_name(server)
    assert_meshed(k, ns, server_pod)
    assert_meshed(k, ns, client.pod)
    client_id = mesh.identity(c, ns, "default")
    server_id = mesh.identity(c, ns, "server")
    url = service_url(mesh, c, ns, "server")
    with evidence.step("converge"):
        converge(client, url)
    result = client.run(url, REQUESTS)
    seen = statuses(result)
    assert seen == {"200": REQUESTS}, (
        f"expected {REQUESTS} x 200 from meshed {client.pod} to {url}; saw {seen} "
        f"(records in the evidence)"
    )
    ids = {r["responder"]["client_id"] for r in result["records"] if r["responder"]}
    evidence.record("tls", {"client_id_seen_by_server": sorted(map(str, ids))})
    assert ids == {client_id}, (
        f"expected the server to see l5d-client-id {client_id} (CONF-30: "
        f"<sa>.<ns>.serviceaccount.identity.<cp-ns>.<trust domain>) on every request; "
        f"it saw {ids}"
    )
    inbound = _wait_metric(
        mesh,
        c,
        ns,
        server_pod,
        REQUESTS,
        "request_total",
        direction="inbound",
        tls="true",
        client_id=client_id,
    )
    outbound = _wait_metric(
        mesh,
        c,
        ns,
        client.pod,
        REQUESTS,
        "request_total",
        direction="outbound",
        tls="true",
        server_id=server_id,
    )
    evidence.record(
        "metrics",
        {
            "server_inbound": inbound.describe("request_total", direction="inbound"),
            "client_outbound": outbound.describe("request_total", direction="outbound"),
        },
    )
    plain = outbound.sum("request_total", direction="outbound", tls="no_identity")
    assert plain == 0, (
        f"expected no plaintext outbound requests from meshed {client.pod} to a meshed "
        f"server; its proxy counts: {outbound.describe('request_total', direction='outbound')}"
    )


@pytest.mark.conformance(
    short_name="mesh-unmeshed-client",
    description="Under the default all-unauthenticated policy an unmeshed client reaches a "
    "meshed server; the server's proxy counts it as not mTLS and passes no client identity "
    "(CONF-36)",
    features=["injection", "proxy-metrics", "default-inbound-policy"],
    profile="mesh",
    conf=["CONF-36"],
)
def test_unmeshed_client_reaches_meshed_server_without_tls(
    mesh: Mesh, meshed_namespace: str, evidence: Evidence
) -> None:
    """(d) an unmeshed client succeeds and shows as no-TLS in the server's proxy metrics."""
    c, ns = mesh.primary, meshed_namespace
    k = mesh.kube[c]
    (server,) = deploy_server(mesh, ns, c, replicas=1)
    server_pod = pod_name(server)
    client = unmeshed_client(k, ns, evidence)
    assert_meshed(k, ns, server_pod)
    assert_meshed(k, ns, client.pod, meshed=False)
    url = service_url(mesh, c, ns, "server")
    converge(client, url)
    result = client.run(url, REQUESTS)
    seen = statuses(result)
    assert seen == {"200": REQUESTS}, (
        f"expected {REQUESTS} x 200 from unmeshed {client.pod} to meshed {url} under the "
        f"default all-unauthenticated policy; saw {seen}"
    )
    ids = {r["responder"]["client_id"] for r in result["records"] if r["responder"]}
    assert ids == {None}, (
        f"expected no client identity for an unmeshed client (no l5d-client-id); "
        f"the server saw {ids}"
    )
    inbound = _wait_metric(
        mesh,
        c,
        ns,
        server_pod,
        REQUESTS,
        "request_total",
        direction="inbound",
        tls="no_identity",
        no_tls_reason="no_tls_from_remote",
    )
    evidence.record("metrics", {"server_inbound": inbound.describe("request_total")})
    secured = inbound.sum("request_total", direction="inbound", tls="true")
    assert secured == 0, (
        f"expected no mTLS inbound requests at {server_pod} (only an unmeshed client calls "
        f"it); its proxy counts: {inbound.describe('request_total', direction='inbound')}"
    )
