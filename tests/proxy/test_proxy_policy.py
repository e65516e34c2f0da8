"""Inbound authorization decisions: servers, authorizations and the default policies."""

from __future__ import annotations

import pytest

from mesh.proxy.policy import (
    DEFAULT_CLUSTER_NETWORKS,
    Allow,
    Authorization,
    Client,
    DefaultPolicy,
    Deny,
    MeshTls,
    Network,
    ProxyProtocol,
    Server,
    StaticPolicy,
    authorize,
    default_server,
    parse_networks,
)

GOOD = "slow-cooker.mc-demo.serviceaccount.identity.linkerd.cluster.local"
EVIL = "slow-cooker-evil.mc-demo.serviceaccount.identity.linkerd.cluster.local"
REMOTE = "slow-cooker.mc-demo.serviceaccount.identity.linkerd.target"
POD_IP = "10.42.0.9"
OUTSIDE_IP = "203.0.113.5"

BB = Server(
    name="bb",
    protocol=ProxyProtocol.HTTP1,
    authorizations=(Authorization(name="bb-authz", authentication=MeshTls((GOOD,))),),
)


def decide(server: Server, identity: str | None, ip: str = POD_IP) -> str:
    decision = authorize(server, Client.of(identity, ip))
    if isinstance(decision, Allow):
        return f"allow:{decision.authorization.kind}/{decision.authorization.name}"
    return "deny"


def test_one_identity_is_allowed_others_denied() -> None:
    """CONF-34: only the named client identity is authorized."""
    assert decide(BB, GOOD) == "allow:authorizationpolicy/bb-authz"
    assert decide(BB, EVIL) == "deny"
    assert decide(BB, None) == "deny"


def test_identity_from_another_trust_domain_is_matched_exactly() -> None:
    """CONF-35: a policy may name a client from another cluster's trust domain."""
    server = Server(
        "bb", authorizations=(Authorization("remote", authentication=MeshTls((REMOTE,))),)
    )
    assert decide(server, REMOTE).startswith("allow")
    assert decide(server, GOOD) == "deny"


@pytest.mark.parametrize(
    ("pattern", "identity", "admitted"),
    [
        ("*", GOOD, True),
        ("*.mc-demo.serviceaccount.identity.linkerd.cluster.local", GOOD, True),
        ("*.other.serviceaccount.identity.linkerd.cluster.local", GOOD, False),
        (GOOD, GOOD, True),
        (GOOD, EVIL, False),
    ],
)
def test_identity_patterns(pattern: str, identity: str, admitted: bool) -> None:
    assert MeshTls((pattern,)).admits(identity) is admitted


def test_network_and_identity_must_both_hold() -> None:
    """CONF-37: an AuthorizationPolicy requires all of its authentications."""
    authz = Authorization(
        "both", authentication=MeshTls((GOOD,)), networks=(Network.parse("10.42.0.0/16"),)
    )
    server = Server("bb", authorizations=(authz,))
    assert decide(server, GOOD, POD_IP).startswith("allow")
    assert decide(server, GOOD, OUTSIDE_IP) == "deny"
    assert decide(server, EVIL, POD_IP) == "deny"


def test_network_authentication_by_cidr_with_exceptions() -> None:
    """CONF-37: NetworkAuthentication admits by client CIDR."""
    network = Network.parse("10.0.0.0/8", ["10.42.7.0/24"])
    server = Server("bb", authorizations=(Authorization("nets", networks=(network,)),))
    assert decide(server, None, "10.1.2.3").startswith("allow")
    assert decide(server, None, "10.42.7.9") == "deny"
    assert decide(server, None, "fd00::1") == "deny"
    assert decide(server, None, "::ffff:10.1.2.3").startswith("allow")


@pytest.mark.parametrize(
    ("policy", "identity", "ip", "allowed"),
    [
        (DefaultPolicy.ALL_UNAUTHENTICATED, None, OUTSIDE_IP, True),
        (DefaultPolicy.ALL_AUTHENTICATED, None, POD_IP, False),
        (DefaultPolicy.ALL_AUTHENTICATED, EVIL, OUTSIDE_IP, True),
        (DefaultPolicy.CLUSTER_UNAUTHENTICATED, None, POD_IP, True),
        (DefaultPolicy.CLUSTER_UNAUTHENTICATED, None, OUTSIDE_IP, False),
        (DefaultPolicy.CLUSTER_AUTHENTICATED, GOOD, POD_IP, True),
        (DefaultPolicy.CLUSTER_AUTHENTICATED, None, POD_IP, False),
        (DefaultPolicy.CLUSTER_AUTHENTICATED, GOOD, OUTSIDE_IP, False),
        (DefaultPolicy.DENY, GOOD, POD_IP, False),
    ],
)
def test_default_policies(
    policy: DefaultPolicy, identity: str | None, ip: str, allowed: bool
) -> None:
    """CONF-36: default policies behave as named."""
    server = default_server(policy, cluster_networks=DEFAULT_CLUSTER_NETWORKS)
    assert (server.kind, server.name) == ("default", policy.value)
    result = decide(server, identity, ip)
    assert result == (f"allow:default/{policy.value}" if allowed else "deny")


def test_cluster_policies_use_the_configured_networks() -> None:
    server = default_server(
        DefaultPolicy.CLUSTER_UNAUTHENTICATED, cluster_networks=parse_networks(["192.0.2.0/24"])
    )
    assert decide(server, None, "192.0.2.7").startswith("allow")
    assert decide(server, None, POD_IP) == "deny"


def test_probe_paths_are_allowed_for_anyone() -> None:
    server = default_server(DefaultPolicy.DENY, probe_paths=("/ready", "/live"))
    client = Client.of(None, "10.42.0.1")
    probe = authorize(server, client, method="GET", path="/ready?verbose")
    assert isinstance(probe, Allow)
    assert (probe.authorization.kind, probe.authorization.name) == ("default", "probe")
    assert isinstance(authorize(server, client, method="POST", path="/ready"), Deny)
    assert isinstance(authorize(server, client, method="GET", path="/other"), Deny)


def test_static_policy_falls_back_to_the_default() -> None:
    source = StaticPolicy(default_server(DefaultPolicy.DENY), {8080: BB})
    assert source.server(8080) is BB
    assert source.server(9090).name == "deny"
