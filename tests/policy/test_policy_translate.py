"""Inbound policies as ``isthmus.policy.v1.Server`` messages."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from mesh.policy import (
    ALL_NETWORKS,
    Authorization,
    InboundServer,
    Network,
    PolicySnapshot,
    Protocol,
    Ref,
    TlsAuthenticated,
    Unauthenticated,
    inbound_server,
)
from mesh.policy.translate import server_message
from mesh.proto import inbound_pb2 as pb
from tests.policy.support import CONFIG, pod


def network(net: str, *excepted: str) -> pb.Network:
    message = pb.Network(net=net)
    getattr(message, "except").extend(excepted)
    return message


def test_the_default_policy_as_linkerd_sends_it() -> None:
    p = pod(annotations={"config.linkerd.io/default-inbound-policy": "cluster-authenticated"})
    message = server_message(inbound_server(PolicySnapshot.of([p]), CONFIG, p, 8080))
    assert message == pb.Server(
        protocol=pb.ProxyProtocol(
            detect=pb.ProxyProtocol.Detect(timeout=Duration(seconds=10)),
        ),
        authorizations=[
            pb.Authz(
                networks=[network("10.0.0.0/8"), network("192.168.0.0/16")],
                authentication=pb.Authn(
                    tls_authenticated=pb.Authn.PermitTls(suffixes=[""]),
                ),
                labels={"group": "", "kind": "default", "name": "cluster-authenticated"},
            )
        ],
        labels={"group": "", "kind": "default", "name": "cluster-authenticated"},
    )


def test_deny_has_no_authorizations() -> None:
    p = pod(annotations={"config.linkerd.io/default-inbound-policy": "deny"})
    message = server_message(inbound_server(PolicySnapshot.of([p]), CONFIG, p, 3306))
    assert message == pb.Server(
        protocol=pb.ProxyProtocol(opaque=pb.ProxyProtocol.Opaque()),
        labels={"group": "", "kind": "default", "name": "deny"},
    )


def test_a_server_with_an_authorization_policy() -> None:
    server = InboundServer(
        Ref.server("web-http"),
        Protocol.HTTP1,
        (
            Authorization(
                Ref.authorization_policy("web-authz"),
                (Network("10.0.0.0/8", ("10.9.0.0/16",)),),
                TlsAuthenticated(("client.shop.serviceaccount.identity.linkerd.td",), ("ops",)),
            ),
            Authorization(Ref.default("all-unauthenticated"), ALL_NETWORKS, Unauthenticated()),
        ),
    )
    assert server_message(server) == pb.Server(
        protocol=pb.ProxyProtocol(http1=pb.ProxyProtocol.Http1()),
        authorizations=[
            pb.Authz(
                networks=[network("10.0.0.0/8", "10.9.0.0/16")],
                authentication=pb.Authn(
                    tls_authenticated=pb.Authn.PermitTls(
                        identities=["client.shop.serviceaccount.identity.linkerd.td"],
                        suffixes=["ops"],
                    )
                ),
                labels={
                    "group": "policy.linkerd.io",
                    "kind": "authorizationpolicy",
                    "name": "web-authz",
                },
            ),
            pb.Authz(
                networks=[network("0.0.0.0/0"), network("::/0")],
                authentication=pb.Authn(unauthenticated=pb.Authn.PermitUnauthenticated()),
                labels={"group": "", "kind": "default", "name": "all-unauthenticated"},
            ),
        ],
        labels={"group": "policy.linkerd.io", "kind": "server", "name": "web-http"},
    )


def test_detect_timeout_keeps_fractions() -> None:
    server = InboundServer(Ref.default("deny"), detect_timeout=0.25)
    assert server_message(server).protocol.detect.timeout == Duration(nanos=250_000_000)
