"""Default inbound policies: which one a pod port gets, and what each admits."""

from __future__ import annotations

import pytest

from mesh.k8s.annotations import PortRanges
from mesh.k8s.objects import ContainerPort
from mesh.policy import (
    Authorization,
    DefaultPolicy,
    InboundServer,
    Network,
    PolicyConfig,
    PolicySnapshot,
    Protocol,
    Ref,
    TlsAuthenticated,
    Unauthenticated,
    inbound_server,
    parse_networks,
)
from mesh.policy.defaults import tls_authentication
from tests.policy.support import CONFIG, default, namespace, pod

EVERYWHERE = (Network("0.0.0.0/0"), Network("::/0"))
CLUSTER = (Network("10.0.0.0/8"), Network("192.168.0.0/16"))
ANYONE = TlsAuthenticated(suffixes=("",))


def _authz(name: str, networks: tuple[Network, ...], authn: object) -> Authorization:
    assert isinstance(authn, Unauthenticated | TlsAuthenticated)
    return Authorization(Ref("", "default", name), networks, authn)


@pytest.mark.parametrize(
    ("policy", "authorizations"),
    [
        (
            "all-unauthenticated",
            (_authz("all-unauthenticated", EVERYWHERE, Unauthenticated()),),
        ),
        ("all-authenticated", (_authz("all-authenticated", EVERYWHERE, ANYONE),)),
        (
            "cluster-unauthenticated",
            (_authz("cluster-unauthenticated", CLUSTER, Unauthenticated()),),
        ),
        ("cluster-authenticated", (_authz("cluster-authenticated", CLUSTER, ANYONE),)),
        ("deny", ()),
        ("audit", (_authz("audit", EVERYWHERE, Unauthenticated()),)),
    ],
)
def test_each_default_policy_admits_what_its_name_says(
    policy: str, authorizations: tuple[Authorization, ...]
) -> None:
    p = pod(annotations={"config.linkerd.io/default-inbound-policy": policy})
    got = inbound_server(PolicySnapshot.of([p]), CONFIG, p, 8080)
    assert got == InboundServer(
        ref=Ref("", "default", policy),
        protocol=Protocol.DETECT,
        authorizations=authorizations,
        detect_timeout=10.0,
    )
    assert got.ref.labels() == {"group": "", "kind": "default", "name": policy}


POLICY = "config.linkerd.io/default-inbound-policy"


@pytest.mark.parametrize(
    ("pod_annotation", "ns_annotation", "flag", "expected"),
    [
        (None, None, "all-unauthenticated", "all-unauthenticated"),
        (None, None, "deny", "deny"),
        (None, "cluster-authenticated", "deny", "cluster-authenticated"),
        ("all-authenticated", "cluster-authenticated", "deny", "all-authenticated"),
        ("deny", None, "all-unauthenticated", "deny"),
        ("bogus", "cluster-unauthenticated", "deny", "cluster-unauthenticated"),
        ("bogus", "bogus", "deny", "deny"),
        (" deny ", None, "all-unauthenticated", "deny"),
    ],
)
def test_pod_annotation_then_namespace_annotation_then_flag(
    pod_annotation: str | None, ns_annotation: str | None, flag: str, expected: str
) -> None:
    p = pod(annotations={POLICY: pod_annotation} if pod_annotation else None)
    ns = namespace(annotations={POLICY: ns_annotation} if ns_annotation else None)
    config = PolicyConfig(
        cluster_networks=CONFIG.cluster_networks, default_policy=DefaultPolicy(flag)
    )
    got = inbound_server(PolicySnapshot.of([p, ns]), config, p, 8080)
    assert got == default(expected)


@pytest.mark.parametrize(
    ("pod_notes", "ns_notes", "port", "protocol"),
    [
        ({}, {}, 8080, Protocol.DETECT),
        ({}, {}, 3306, Protocol.OPAQUE),  # Linkerd's default opaque ports
        ({"config.linkerd.io/opaque-ports": "8080"}, {}, 8080, Protocol.OPAQUE),
        ({"config.linkerd.io/opaque-ports": "8080"}, {}, 3306, Protocol.DETECT),
        ({"config.linkerd.io/opaque-ports": "8000-8100"}, {}, 8080, Protocol.OPAQUE),
        ({"config.linkerd.io/opaque-ports": "http"}, {}, 8080, Protocol.OPAQUE),
        ({}, {"config.linkerd.io/opaque-ports": "8080"}, 8080, Protocol.OPAQUE),
        (
            {"config.linkerd.io/opaque-ports": ""},
            {"config.linkerd.io/opaque-ports": "8080"},
            8080,
            Protocol.DETECT,
        ),
    ],
)
def test_opaque_ports_come_from_the_pod_then_namespace_then_defaults(
    pod_notes: dict[str, str], ns_notes: dict[str, str], port: int, protocol: Protocol
) -> None:
    p = pod(annotations=pod_notes)
    got = inbound_server(PolicySnapshot.of([p, namespace(annotations=ns_notes)]), CONFIG, p, port)
    assert got == default("all-unauthenticated", protocol)


def test_configured_default_opaque_ports_replace_linkerds() -> None:
    p = pod()
    config = PolicyConfig(default_opaque_ports=PortRanges.of(8080))
    assert inbound_server(PolicySnapshot.of([p]), config, p, 8080).protocol is Protocol.OPAQUE
    assert inbound_server(PolicySnapshot.of([p]), config, p, 3306).protocol is Protocol.DETECT


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("all-unauthenticated", "all-authenticated"),
        ("cluster-unauthenticated", "cluster-authenticated"),
        ("all-authenticated", "all-authenticated"),
        ("deny", "deny"),
    ],
)
def test_require_identity_ports_need_an_identity(policy: str, expected: str) -> None:
    p = pod(
        annotations={
            POLICY: policy,
            "config.linkerd.io/proxy-require-identity-inbound-ports": "8080,9000-9010",
        }
    )
    snapshot = PolicySnapshot.of([p])
    assert inbound_server(snapshot, CONFIG, p, 8080) == default(expected)
    assert inbound_server(snapshot, CONFIG, p, 9005) == default(expected)
    assert inbound_server(snapshot, CONFIG, p, 8081) == default(policy)


@pytest.mark.parametrize("policy", ["deny", "all-authenticated", "cluster-authenticated"])
def test_the_proxy_admin_port_admits_everyone(policy: str) -> None:
    p = pod(annotations={POLICY: policy})
    snapshot = PolicySnapshot.of([p])
    assert inbound_server(snapshot, CONFIG, p, 4191) == default("all-unauthenticated")
    moved = pod(annotations={POLICY: policy, "config.linkerd.io/admin-port": "9191"})
    snapshot = PolicySnapshot.of([moved])
    assert inbound_server(snapshot, CONFIG, moved, 9191) == default("all-unauthenticated")
    assert inbound_server(snapshot, CONFIG, moved, 4191) == default(policy)


def test_udp_ports_are_not_port_names() -> None:
    p = pod(
        annotations={"config.linkerd.io/opaque-ports": "dns"},
        ports=(ContainerPort(53, "dns", "UDP"),),
    )
    assert inbound_server(PolicySnapshot.of([p]), CONFIG, p, 53).protocol is Protocol.DETECT


@pytest.mark.parametrize(
    ("patterns", "identities", "suffixes"),
    [
        (["*"], (), ("",)),
        (
            ["*.shop.serviceaccount.identity.linkerd.td"],
            (),
            ("shop.serviceaccount.identity.linkerd.td",),
        ),
        (
            ["web.shop.serviceaccount.identity.linkerd.td"],
            ("web.shop.serviceaccount.identity.linkerd.td",),
            (),
        ),
        (["a", "*", "a", "*.b"], ("a",), ("", "b")),
    ],
)
def test_identity_patterns(
    patterns: list[str], identities: tuple[str, ...], suffixes: tuple[str, ...]
) -> None:
    assert tls_authentication(patterns) == TlsAuthenticated(identities, suffixes)


def test_cluster_networks_parse_and_normalise() -> None:
    assert parse_networks("10.0.0.0/8, 10.1.2.3/16,fd00::/8") == (
        Network("10.0.0.0/8"),
        Network("10.1.0.0/16"),
        Network("fd00::/8"),
    )
    with pytest.raises(ValueError, match="nope"):
        parse_networks("10.0.0.0/8,nope")
