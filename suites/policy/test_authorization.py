"""Identity-based authorization in one cluster (CONF-34, CONF-37), as seed 000 writes it.

One deployment for the module, in the primary cluster: meshed servers under
their own service accounts, each selected by a ``Server`` (policy.linkerd.io/v1beta1,
as the seed) and authorized by an ``AuthorizationPolicy`` naming
``MeshTLSAuthentication`` / ``NetworkAuthentication`` resources; meshed clients
``good`` (twice, two pods of one service account), ``evil`` and an unmeshed one.

Besides the seed's flow it checks that an ``AuthorizationPolicy`` requires every
authentication it names, that a change of policy reaches running connections
within ``TIMEOUTS.policy_update`` (the figures go to the evidence), that a policy
naming what does not exist denies and says so in Events, and that an identity
written with the cluster domain, where the trust domain differs, names nobody.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fixtures.mesh import Mesh
from fixtures.workloads import LoadClient
from harness.kube import wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.policy._support import (
    ALLOWED,
    DENIED,
    HTTP_PORT,
    PolicyServer,
    Stage,
    apply_docs,
    authorization_policy,
    converge_to,
    diagnose,
    events_about,
    http_probe,
    meshtls_authentication,
    network_authentication,
    server_resource,
    stage,
    wait_metric,
)

pytestmark = pytest.mark.xdist_group("policy-authorization")

#: requests of each measured run.
REQUESTS = 20
#: allow -> deny -> allow flips measured by the policy-change test.
FLIPS = 6


@dataclass
class Deployed:
    stage: Stage
    cluster: str
    ns: str
    servers: dict[str, PolicyServer]
    clients: dict[str, LoadClient]

    def ip(self, mesh: Mesh, client: str) -> str:
        pod = mesh.kube[self.cluster].wait_pod_ready(self.clients[client].pod, self.ns)
        ip = pod.status.podIP if pod.status is not None else None
        assert ip, f"client {client} has no IP"
        return str(ip)

    def url(self, mesh: Mesh, server: str) -> str:
        return f"http://{self.servers[server].ip(mesh)}:{HTTP_PORT}/"


SERVERS = ("bb", "duo", "flip", "ghost")


@pytest.fixture(scope="module")
def deployed(mesh: Mesh) -> Iterator[Deployed]:
    cluster = mesh.primary
    with stage(mesh, "pol-authz") as made:
        ns = made.namespace("demo")
        servers = {name: made.server(cluster, ns, name, account=name) for name in SERVERS}
        clients = {
            "good": made.client(cluster, ns, "good", account="good", meshed=True),
            "good2": made.client(cluster, ns, "good2", account="good", meshed=True),
            "evil": made.client(cluster, ns, "evil", account="evil", meshed=True),
            "unmeshed": made.client(cluster, ns, "unmeshed", meshed=False),
        }
        for server in servers.values():
            server.pod(mesh)
        for client in clients.values():
            mesh.kube[cluster].wait_pod_ready(client.pod, ns)
        yield Deployed(made, cluster, ns, servers, clients)


def _run(client: LoadClient, url: str, label: str) -> dict[str, int]:
    result = client.run(url, REQUESTS, timeout=3, concurrency=1, label=label)
    seen: dict[str, int] = {}
    for record in result["records"]:
        key = str(record["status"]) if record["status"] is not None else str(record.get("error"))
        seen[key] = seen.get(key, 0) + 1
    return seen


@pytest.mark.conformance(
    short_name="policy-meshtls-one-identity",
    description="Seed 000's policy in one cluster: with a Server, an AuthorizationPolicy and "
    "a MeshTLSAuthentication naming one client identity, that client gets 200 on every "
    "request (and the server sees its identity), another service account gets 403 on every "
    "request, and the server's proxy counts the denials in inbound_http_authz_deny_total "
    "and the admissions in inbound_http_authz_allow_total under the policy's name (CONF-34)",
    features=["policy", "injection", "mtls", "proxy-metrics"],
    profile="mesh",
    conf=["CONF-34"],
)
def test_named_identity_is_admitted_and_others_refused(
    mesh: Mesh, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    d, k = deployed, mesh.kube[deployed.cluster]
    good_id = mesh.identity(d.cluster, d.ns, "good")
    with evidence.step("apply the seed's Server, AuthorizationPolicy and MeshTLSAuthentication"):
        apply_docs(
            k,
            d.ns,
            server_resource("bb", "bb"),
            meshtls_authentication("bb-good", good_id),
            authorization_policy("bb-authz", "bb", ("MeshTLSAuthentication", "bb-good")),
        )
    url = d.url(mesh, "bb")
    bb = d.servers["bb"]
    converge_to("good -> bb", lambda: http_probe(d.clients["good"], url, 3), ALLOWED)
    converge_to("evil -> bb", lambda: http_probe(d.clients["evil"], url, 3), DENIED)
    before = bb.metrics(mesh)
    deny0 = before.sum("inbound_http_authz_deny_total", srv_name="bb", srv_kind="server")
    allow0 = before.sum("inbound_http_authz_allow_total", srv_name="bb", authz_name="bb-authz")
    good = _run(d.clients["good"], url, "good -> bb")
    evil = _run(d.clients["evil"], url, "evil -> bb")
    assert good == {"200": REQUESTS}, f"expected {REQUESTS} x 200 for {good_id}; saw {good}"
    assert evil == {"403": REQUESTS}, (
        f"expected 403 on every one of {REQUESTS} requests from service account evil "
        f"(not named by bb-good); saw {evil}"
    )
    records = http_probe(d.clients["good"], url, 3)
    assert {o.client_id for o in records} == {good_id}, (
        f"expected the server to see {good_id}; saw {[o.client_id for o in records]}"
    )
    denied = wait_metric(
        bb,
        mesh,
        "inbound_http_authz_deny_total",
        deny0 + REQUESTS,
        srv_name="bb",
        srv_kind="server",
    )
    allowed = wait_metric(
        bb,
        mesh,
        "inbound_http_authz_allow_total",
        allow0 + REQUESTS,
        srv_name="bb",
        authz_name="bb-authz",
        authz_kind="authorizationpolicy",
    )
    evidence.record(
        "metrics",
        {
            "deny": denied.describe("inbound_http_authz_deny_total"),
            "allow": allowed.describe("inbound_http_authz_allow_total"),
        },
    )


@pytest.mark.conformance(
    short_name="policy-all-authentications-required",
    description="An AuthorizationPolicy naming a MeshTLSAuthentication and a "
    "NetworkAuthentication admits only a client that satisfies both: the named identity "
    "from an admitted network gets 200; the same identity from an excepted address, "
    "another identity from an admitted network, and an unmeshed client all get 403 "
    "(CONF-37)",
    features=["policy", "injection", "mtls"],
    profile="mesh",
    conf=["CONF-37"],
)
def test_every_named_authentication_must_admit(
    mesh: Mesh, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    d, k = deployed, mesh.kube[deployed.cluster]
    good_id = mesh.identity(d.cluster, d.ns, "good")
    excepted = d.ip(mesh, "good2")
    net = {"cidr": "0.0.0.0/0", "except": [f"{excepted}/32"]}
    evidence.record("policy", {"identity": good_id, "network": net})
    apply_docs(
        k,
        d.ns,
        server_resource("duo", "duo"),
        meshtls_authentication("duo-ids", good_id),
        network_authentication("duo-net", net),
        authorization_policy(
            "duo-authz",
            "duo",
            ("MeshTLSAuthentication", "duo-ids"),
            ("NetworkAuthentication", "duo-net"),
        ),
    )
    url = d.url(mesh, "duo")
    expectations = {
        "good": (ALLOWED, "named identity, admitted network"),
        "good2": (DENIED, f"named identity from the excepted address {excepted}"),
        "evil": (DENIED, "other identity, admitted network"),
        "unmeshed": (DENIED, "no identity, admitted network"),
    }
    failures = []
    for name, (expected, why) in expectations.items():
        client = d.clients[name]
        try:
            seen = converge_to(
                f"{name} -> duo", functools.partial(http_probe, client, url, 3), expected
            )
            evidence.record("verdict", {"client": name, "why": why, "seen": str(seen[-1])})
        except AssertionError as e:
            failures.append(f"{name} ({why}): {e}")
    assert not failures, "CONF-37: " + " | ".join(failures)


def _until_verdict(what: str, client: LoadClient, url: str, want: str, since: float) -> float:
    """Seconds from ``since`` to the first single-request probe that sees ``want``."""
    seen: list[str] = []

    def flipped() -> float | None:
        [outcome] = http_probe(client, url, 1)
        seen.append(str(outcome))
        return time.monotonic() - since if outcome.verdict == want else None

    return wait_for(
        what, flipped, TIMEOUTS.policy_update, lambda: "; ".join(seen[-5:]), interval=0.05
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.mark.conformance(
    short_name="policy-change-applies-promptly",
    description="Changing the MeshTLSAuthentication an AuthorizationPolicy names flips a "
    "client between 200 and 403 on its next requests over the running connection within "
    "TIMEOUTS.policy_update; the p50 and max of the measured delays are recorded "
    "(CONF-34)",
    features=["policy", "injection", "mtls", "proxy-metrics"],
    profile="mesh",
    conf=["CONF-34"],
)
def test_policy_change_reaches_running_connections(
    mesh: Mesh, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    d, k = deployed, mesh.kube[deployed.cluster]
    good_id = mesh.identity(d.cluster, d.ns, "good")
    other_id = mesh.identity(d.cluster, d.ns, "evil")
    apply_docs(
        k,
        d.ns,
        server_resource("flip", "flip"),
        meshtls_authentication("flip-ids", good_id),
        authorization_policy("flip-authz", "flip", ("MeshTLSAuthentication", "flip-ids")),
    )
    url = d.url(mesh, "flip")
    client = d.clients["good"]
    converge_to("good -> flip", lambda: http_probe(client, url, 3), ALLOWED)
    flip = d.servers["flip"]
    opened0 = flip.metrics(mesh).sum("tcp_open_total", direction="inbound", srv_name="flip")
    delays: list[float] = []
    for i in range(FLIPS):
        named, expected = (other_id, DENIED) if i % 2 == 0 else (good_id, ALLOWED)
        applied = apply_docs(k, d.ns, meshtls_authentication("flip-ids", named))
        what = f"flip {i + 1}: good -> flip {expected} after naming {named}"
        delays.append(_until_verdict(what, client, url, expected, applied))
    opened = flip.metrics(mesh).sum("tcp_open_total", direction="inbound", srv_name="flip")
    figures = {
        "flips": len(delays),
        "delays_s": [round(x, 3) for x in delays],
        "p50_s": round(statistics.median(delays), 3),
        "p90_s": round(_percentile(delays, 0.9), 3),
        "max_s": round(max(delays), 3),
        "bound_s": TIMEOUTS.policy_update,
        "inbound_connections_opened_during_flips": opened - opened0,
        "method": "time from the API accepting the change to the first probe (one request "
        "per probe, every 50 ms plus a pod-proxy round trip) that sees the new verdict",
    }
    evidence.record("policy change latency", figures)
    print(f"policy change latency: {figures}")


@pytest.mark.conformance(
    short_name="policy-missing-references-deny",
    description="An AuthorizationPolicy naming a MeshTLSAuthentication that does not exist "
    "denies its Server's clients and says so in Warning Events on the Server and the "
    "policy; one targeting a Server that does not exist is reported too; creating the "
    "missing authentication admits the named client (CONF-34)",
    features=["policy", "injection", "mtls"],
    profile="mesh",
    conf=["CONF-34"],
)
def test_policy_naming_missing_resources_denies_and_says_so(
    mesh: Mesh, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    d, k = deployed, mesh.kube[deployed.cluster]
    good_id = mesh.identity(d.cluster, d.ns, "good")
    apply_docs(
        k,
        d.ns,
        server_resource("ghost", "ghost"),
        authorization_policy("ghost-authz", "ghost", ("MeshTLSAuthentication", "nobody")),
        authorization_policy("stray-authz", "no-such-server", ("MeshTLSAuthentication", "nobody")),
    )
    url = d.url(mesh, "ghost")
    converge_to("good -> ghost", lambda: http_probe(d.clients["good"], url, 3), DENIED)

    def reported(kind: str, name: str, reason: str) -> dict[str, object]:
        def check() -> dict[str, object] | None:
            for event in events_about(k, d.ns, kind, name):
                if event.get("reason") == reason and event.get("type") == "Warning":
                    return event
            return None

        event = wait_for(
            f"[{d.cluster}] a Warning Event {reason} on {kind} {d.ns}/{name}",
            check,
            TIMEOUTS.policy_update,
            lambda: str([e.get("reason") for e in events_about(k, d.ns, kind, name)]),
        )
        evidence.record("event", {"on": f"{kind}/{name}", "message": event.get("message")})
        return event

    on_server = reported("Server", "ghost", "AuthorizationIgnored")
    assert "nobody" in str(on_server.get("message")), (
        f"expected the Event on Server ghost to name the missing MeshTLSAuthentication "
        f"'nobody'; it says {on_server.get('message')!r}"
    )
    reported("AuthorizationPolicy", "ghost-authz", "AuthorizationIgnored")
    reported("AuthorizationPolicy", "stray-authz", "TargetNotFound")
    apply_docs(k, d.ns, meshtls_authentication("nobody", good_id))
    converge_to(
        "good -> ghost once the authentication exists",
        lambda: http_probe(d.clients["good"], url, 3),
        ALLOWED,
    )


@dataclass
class TrustDomainStage:
    cluster: str
    ns: str
    server: PolicyServer
    client: LoadClient


@pytest.fixture(scope="module")
def trust_domain_stage(mesh: Mesh, deployed: Deployed) -> TrustDomainStage:
    differ = [c for c in mesh.clusters.values() if c.trust_domain != c.domain]
    if not differ:
        pytest.skip(
            "no cluster of this topology has a trust domain other than its cluster domain "
            "(set trust_domain in the topology, as in seed 000's source cluster)"
        )
    cluster = differ[0].name
    ns = deployed.ns
    server = deployed.stage.server(cluster, ns, "td", account="td")
    if cluster == deployed.cluster:
        client = deployed.clients["good"]
    else:
        client = deployed.stage.client(cluster, ns, "good", account="good", meshed=True)
    server.pod(mesh)
    mesh.kube[cluster].wait_pod_ready(client.pod, ns)
    return TrustDomainStage(cluster, ns, server, client)


@pytest.mark.conformance(
    short_name="policy-identity-uses-trust-domain",
    description="Where a cluster's trust domain differs from its cluster domain (seed 000's "
    "remark), a MeshTLSAuthentication naming <sa>.<ns>.serviceaccount.identity.linkerd."
    "<cluster domain> does not admit that service account's client (403); naming it with "
    "the trust domain does (200), and the server sees the trust-domain identity "
    "(CONF-30, CONF-34)",
    features=["policy", "injection", "mtls"],
    profile="mesh",
    conf=["CONF-30", "CONF-34"],
)
def test_identity_written_with_the_cluster_domain_is_not_the_clients(
    mesh: Mesh,
    trust_domain_stage: TrustDomainStage,
    evidence: Evidence,
    request: pytest.FixtureRequest,
    deployed: Deployed,
) -> None:
    diagnose(request, deployed.stage)
    t = trust_domain_stage
    k = mesh.kube[t.cluster]
    cluster = mesh.clusters[t.cluster]
    trust_id = mesh.identity(t.cluster, t.ns, "good")
    domain_id = (
        f"good.{t.ns}.serviceaccount.identity.{mesh.adapter.control_plane_ns}.{cluster.domain}"
    )
    evidence.record(
        "identities",
        {"trust_domain": cluster.trust_domain, "cluster_domain": cluster.domain},
    )
    name, app = "td-server", t.server.name
    apply_docs(
        k,
        t.ns,
        server_resource(name, app),
        meshtls_authentication("td-ids", domain_id),
        authorization_policy("td-authz", name, ("MeshTLSAuthentication", "td-ids")),
    )
    url = f"http://{t.server.ip(mesh)}:{HTTP_PORT}/"
    converge_to(
        f"good -> {app} with the policy naming {domain_id}",
        lambda: http_probe(t.client, url, 3),
        DENIED,
    )
    apply_docs(k, t.ns, meshtls_authentication("td-ids", trust_id))
    admitted = converge_to(
        f"good -> {app} with the policy naming {trust_id}",
        lambda: http_probe(t.client, url, 3),
        ALLOWED,
    )
    seen = {o.client_id for o in admitted}
    assert seen == {trust_id}, (
        f"CONF-30: expected the server to see the client as {trust_id} (trust domain "
        f"{cluster.trust_domain}), not {domain_id}; it saw {seen}"
    )
