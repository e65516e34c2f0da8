"""Mesh: the proxy balances requests, not connections, over a Service's replicas."""

from __future__ import annotations

from collections import Counter

import pytest

from fixtures.mesh import Mesh
from fixtures.workloads import Workloads
from harness.reporting import Evidence
from suites.mesh._support import (
    binomial_cdf,
    converge,
    deploy_server,
    pod_name,
    service_url,
    statuses,
)

REPLICAS = 3
REQUESTS = 300
#: requests in flight: with peak-EWMA costs (latency x (pending + 1)) a client sending one
#: request at a time may stay on the endpoint with the lowest estimate for a decay period
#: (10 s), as Linkerd's does; a few outstanding requests make the balancer spread them.
CONCURRENCY = 8
#: the claim: every replica gets at least half of a fair share of the requests...
MIN_SHARE = 1 / (2 * REPLICAS)
#: ...rejected only when a replica's count is this unlikely under that share.
ALPHA = 0.001


@pytest.mark.conformance(
    short_name="mesh-request-balancing",
    description=f"A meshed client sending {REQUESTS} requests ({CONCURRENCY} in flight) to a "
    f"Service of {REPLICAS} meshed replicas reaches every replica, and its proxy picked the "
    f"endpoints: each replica's share is judged by a one-sided binomial test against half "
    f"a fair share at alpha={ALPHA}, and the client proxy's outbound metrics name each pod",
    features=["injection", "http-load-balancing"],
    profile="mesh",
    conf=[],
)
def test_requests_spread_over_replicas(
    mesh: Mesh, meshed_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    """(c) requests through the proxy spread over 3 replicas, each getting a share."""
    c, ns = mesh.primary, meshed_namespace
    pods = deploy_server(mesh, ns, c, replicas=REPLICAS)
    names = {pod_name(p) for p in pods}
    client = workloads.client(c)
    url = service_url(mesh, c, ns, "server")
    converge(client, url)
    result = client.run(url, REQUESTS, concurrency=CONCURRENCY)
    seen = statuses(result)
    assert seen == {"200": REQUESTS}, f"expected {REQUESTS} x 200 to {url}; saw {seen}"
    counts = Counter(r["responder"]["pod"] for r in result["records"] if r["responder"])
    shares = {pod: counts.get(pod, 0) for pod in sorted(names)}
    p_values = {pod: binomial_cdf(n, REQUESTS, MIN_SHARE) for pod, n in shares.items()}
    evidence.record(
        "balance", {"counts": shares, "min_share": MIN_SHARE, "alpha": ALPHA, "p": p_values}
    )
    strangers = set(counts) - names
    assert not strangers, f"expected answers only from {sorted(names)}; also from {strangers}"
    starved = {pod: n for pod, n in shares.items() if p_values[pod] < ALPHA}
    assert not starved, (
        f"expected each of {REPLICAS} replicas to get at least {MIN_SHARE:.3f} of {REQUESTS} "
        f"requests (rejecting at P(X<=k) < {ALPHA}); starved: {starved}; all counts: {shares}, "
        f"P-values: { {p: f'{v:.2g}' for p, v in p_values.items()} }"
    )
    # The proxy, not kube-proxy, chose the endpoints: its outbound series name each pod.
    outbound = mesh.metrics(c, ns, client.pod)
    per_pod = {
        pod: outbound.sum("request_total", direction="outbound", dst_pod=pod) for pod in names
    }
    evidence.record("client proxy outbound requests by dst_pod", per_pod)
    short = {pod: n for pod, n in per_pod.items() if n < shares[pod]}
    assert not short, (
        f"expected the client's proxy to have sent each replica at least the requests it "
        f"answered ({shares}); its outbound request_total by dst_pod: {per_pod}"
    )
