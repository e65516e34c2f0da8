"""Identity-based authorization across clusters (CONF-34, CONF-35, CONF-37), seed 000's flow.

One deployment for the module: test servers in ``target`` (``bb`` exported in
remote-discovery mode, ``bb-gw`` exported through the gateway, ``net`` for the
network test), and in ``source`` the seed's two meshed clients ``slow-cooker`` and
``slow-cooker-evil`` (own service accounts) plus an unmeshed client; an unmeshed
client in ``target`` too. The servers' policies are the seed's: a ``Server``, an
``AuthorizationPolicy`` and a ``MeshTLSAuthentication`` (or a
``NetworkAuthentication``), applied in ``target``.

- Gateway mode (CONF-35): the server sees the gateway's identity, so a policy
  naming the remote client refuses it and one naming the gateway admits every
  remote client alike.
- Pod-to-pod mode (CONF-34, CONF-35; needs the ``remote-discovery`` feature): the
  remote client's own identity reaches the server: the named client gets 200,
  the other service account 403 on every request, counted in
  ``inbound_http_authz_deny_total``. Written with the source's cluster domain
  where its trust domain differs, the identity names nobody.
- ``NetworkAuthentication`` by the source cluster's pod CIDR (CONF-37, flat
  network): an unmeshed source pod calling the server's pod IP is admitted, an
  unmeshed pod of the target is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import LoadClient
from harness.reporting import Evidence
from suites.multicluster._support import mirror
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
    http_probe,
    meshtls_authentication,
    network_authentication,
    server_resource,
    stage,
    wait_metric,
)

pytestmark = [pytest.mark.xdist_group("policy-multicluster"), pytest.mark.requires(clusters=2)]

SOURCE, TARGET = "source", "target"
GATEWAY_SA = "linkerd-gateway"
REQUESTS = 20
MC_FEATURES = ["policy", "injection", "mtls", "proxy-metrics", "multicluster"]


@dataclass
class Deployed:
    stage: Stage
    ns: str
    servers: dict[str, PolicyServer]
    clients: dict[str, LoadClient]
    """``good``/``evil``/``unmeshed`` in source, ``local`` (unmeshed) in target."""


@pytest.fixture(scope="module")
def deployed(linked: Linked) -> Iterator[Deployed]:
    mesh = linked.mesh
    if SOURCE not in mesh.clusters or TARGET not in mesh.clusters:
        pytest.skip(f"needs clusters {SOURCE} and {TARGET}; have {sorted(mesh.clusters)}")
    with stage(mesh, "pol-mc") as made:
        ns = made.namespace("mc-demo")
        servers = {
            name: made.server(TARGET, ns, name, account=name) for name in ("bb", "bb-gw", "net")
        }
        clients = {
            "good": made.client(SOURCE, ns, "slow-cooker", account="slow-cooker", meshed=True),
            "evil": made.client(
                SOURCE, ns, "slow-cooker-evil", account="slow-cooker-evil", meshed=True
            ),
            "unmeshed": made.client(SOURCE, ns, "unmeshed", meshed=False),
            "local": made.client(TARGET, ns, "unmeshed", meshed=False),
        }
        for server in servers.values():
            server.pod(mesh)
        for client in clients.values():
            client.kube.wait_pod_ready(client.pod, ns)
        yield Deployed(made, ns, servers, clients)


def _statuses(client: LoadClient, url: str, label: str) -> dict[str, int]:
    result = client.run(url, REQUESTS, timeout=3, concurrency=1, label=label)
    seen: dict[str, int] = {}
    for record in result["records"]:
        key = str(record["status"]) if record["status"] is not None else str(record.get("error"))
        seen[key] = seen.get(key, 0) + 1
    return seen


def _mirror_url(linked: Linked, ns: str, name: str) -> str:
    return f"http://{name}-{TARGET}.{ns}.svc.{linked.clusters[SOURCE].domain}:{HTTP_PORT}/"


def _policy(linked: Linked, ns: str, server: str, *identities: str) -> None:
    apply_docs(
        linked.kube[TARGET],
        ns,
        server_resource(server, server),
        meshtls_authentication(f"{server}-ids", *identities),
        authorization_policy(f"{server}-authz", server, ("MeshTLSAuthentication", f"{server}-ids")),
    )


@pytest.mark.conformance(
    short_name="policy-mc-gateway-identity",
    description="In gateway mode the server sees the gateway's identity: a MeshTLSAuthentication "
    "naming the remote client refuses it (403), one naming the target's gateway admits it "
    "(200) and every other remote client alike, and the server sees the gateway's identity "
    "(CONF-35)",
    features=[*MC_FEATURES, "multicluster-gateway"],
    profile="multicluster",
    conf=["CONF-35"],
)
def test_gateway_mode_server_sees_the_gateway_identity(
    linked: Linked, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    mesh, d = linked.mesh, deployed
    linked.export(TARGET, d.ns, "bb-gw", "true")
    mirror(linked, SOURCE, d.ns, f"bb-gw-{TARGET}")
    url = _mirror_url(linked, d.ns, "bb-gw")
    client_id = mesh.identity(SOURCE, d.ns, "slow-cooker")
    gateway_id = mesh.identity(TARGET, MC_NAMESPACE, GATEWAY_SA)
    with evidence.step(f"policy naming the remote client {client_id}"):
        _policy(linked, d.ns, "bb-gw", client_id)
        converge_to(
            "slow-cooker -> bb-gw-target", lambda: http_probe(d.clients["good"], url, 3), DENIED
        )
    with evidence.step(f"policy naming the gateway {gateway_id}"):
        _policy(linked, d.ns, "bb-gw", gateway_id)
        admitted = converge_to(
            "slow-cooker -> bb-gw-target", lambda: http_probe(d.clients["good"], url, 3), ALLOWED
        )
    seen = {o.client_id for o in admitted}
    assert seen == {gateway_id}, (
        f"CONF-35: expected the server to see the gateway's identity {gateway_id} in gateway "
        f"mode; it saw {seen}"
    )
    evil = _statuses(d.clients["evil"], url, "slow-cooker-evil -> bb-gw-target")
    assert evil == {"200": REQUESTS}, (
        f"CONF-35: in gateway mode a policy naming the gateway admits every remote client; "
        f"expected {REQUESTS} x 200 for slow-cooker-evil, saw {evil}"
    )


@pytest.mark.conformance(
    short_name="policy-mc-pod-to-pod-identity",
    description="Seed 000 across clusters in pod-to-pod mode: with a Server, an "
    "AuthorizationPolicy and a MeshTLSAuthentication in the target naming the source's "
    "slow-cooker identity, slow-cooker calling the remote-discovery mirror gets 200 on every "
    "request (the server sees its own identity), slow-cooker-evil gets 403 on every request, "
    "and the server counts the denials in inbound_http_authz_deny_total (CONF-34, CONF-35)",
    features=[*MC_FEATURES, "remote-discovery"],
    profile="multicluster",
    conf=["CONF-34", "CONF-35"],
)
def test_pod_to_pod_policy_names_the_remote_client(
    linked: Linked, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    mesh, d = linked.mesh, deployed
    linked.export(TARGET, d.ns, "bb", "remote-discovery")
    mirror(linked, SOURCE, d.ns, f"bb-{TARGET}")
    url = _mirror_url(linked, d.ns, "bb")
    good_id = mesh.identity(SOURCE, d.ns, "slow-cooker")
    _policy(linked, d.ns, "bb", good_id)
    bb = d.servers["bb"]
    admitted = converge_to(
        "slow-cooker -> bb-target", lambda: http_probe(d.clients["good"], url, 3), ALLOWED
    )
    converge_to(
        "slow-cooker-evil -> bb-target", lambda: http_probe(d.clients["evil"], url, 3), DENIED
    )
    seen = {o.client_id for o in admitted}
    assert seen == {good_id}, (
        f"CONF-35: expected the remote client's own identity {good_id} at the server in "
        f"pod-to-pod mode; it saw {seen}"
    )
    deny0 = bb.metrics(mesh).sum("inbound_http_authz_deny_total", srv_name="bb", srv_kind="server")
    good = _statuses(d.clients["good"], url, "slow-cooker -> bb-target")
    evil = _statuses(d.clients["evil"], url, "slow-cooker-evil -> bb-target")
    assert good == {"200": REQUESTS}, (
        f"CONF-34: expected {REQUESTS} x 200 for {good_id}; saw {good}"
    )
    assert evil == {"403": REQUESTS}, (
        f"CONF-34: expected 403 on every one of {REQUESTS} requests from slow-cooker-evil; "
        f"saw {evil}"
    )
    counted = wait_metric(
        bb,
        mesh,
        "inbound_http_authz_deny_total",
        deny0 + REQUESTS,
        srv_name="bb",
        srv_kind="server",
    )
    evidence.record("metrics", counted.describe("inbound_http_authz_deny_total"))


@pytest.mark.conformance(
    short_name="policy-mc-trust-domain-identity",
    description="Seed 000's remark across clusters: where the source's trust domain differs "
    "from its cluster domain, a policy naming slow-cooker with the cluster domain refuses it "
    "(403) and one naming it with the trust domain admits it (200) (CONF-34, CONF-35)",
    features=[*MC_FEATURES, "remote-discovery"],
    profile="multicluster",
    conf=["CONF-34", "CONF-35"],
)
def test_pod_to_pod_identity_uses_the_trust_domain(
    linked: Linked, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    mesh, d = linked.mesh, deployed
    source = mesh.clusters[SOURCE]
    if source.trust_domain == source.domain:
        pytest.skip(
            f"cluster {SOURCE}'s trust domain is its cluster domain ({source.domain}); set "
            "trust_domain in the topology to tell them apart"
        )
    linked.export(TARGET, d.ns, "bb", "remote-discovery")
    mirror(linked, SOURCE, d.ns, f"bb-{TARGET}")
    url = _mirror_url(linked, d.ns, "bb")
    trust_id = mesh.identity(SOURCE, d.ns, "slow-cooker")
    plane = mesh.adapter.control_plane_ns
    domain_id = f"slow-cooker.{d.ns}.serviceaccount.identity.{plane}.{source.domain}"
    evidence.record("identities", {"trust_domain_form": trust_id, "cluster_domain_form": domain_id})
    _policy(linked, d.ns, "bb", domain_id)
    converge_to(
        f"slow-cooker -> bb-target, policy naming {domain_id}",
        lambda: http_probe(d.clients["good"], url, 3),
        DENIED,
    )
    _policy(linked, d.ns, "bb", trust_id)
    converge_to(
        f"slow-cooker -> bb-target, policy naming {trust_id}",
        lambda: http_probe(d.clients["good"], url, 3),
        ALLOWED,
    )


@pytest.mark.requires(clusters=2, network="flat")
@pytest.mark.conformance(
    short_name="policy-mc-network-authentication",
    description="A NetworkAuthentication naming the source cluster's pod CIDR admits an "
    "unmeshed source pod calling the target server's pod IP over the flat network (200) and "
    "refuses an unmeshed pod of the target itself (403) (CONF-37)",
    features=["policy", "injection", "multicluster"],
    profile="multicluster",
    conf=["CONF-37"],
)
def test_network_authentication_admits_the_remote_pod_cidr(
    linked: Linked, deployed: Deployed, evidence: Evidence, request: pytest.FixtureRequest
) -> None:
    diagnose(request, deployed.stage)
    mesh, d = linked.mesh, deployed
    cidr = mesh.clusters[SOURCE].pod_cidr
    if not cidr:
        pytest.skip(f"the provider does not say cluster {SOURCE}'s pod CIDR")
    apply_docs(
        linked.kube[TARGET],
        d.ns,
        server_resource("net", "net"),
        network_authentication("source-pods", {"cidr": cidr}),
        authorization_policy("net-authz", "net", ("NetworkAuthentication", "source-pods")),
    )
    evidence.record("policy", {"admitted_cidr": cidr})
    url = f"http://{d.servers['net'].ip(mesh)}:{HTTP_PORT}/"
    converge_to(
        f"{SOURCE} unmeshed -> net (pod IP)",
        lambda: http_probe(d.clients["unmeshed"], url, 3),
        ALLOWED,
    )
    converge_to(
        f"{TARGET} unmeshed -> net (pod IP)", lambda: http_probe(d.clients["local"], url, 3), DENIED
    )
