"""Servers and authorizations: cluster resources -> the policy of one pod port.

Each scenario is a table row: the objects in the cluster besides pod
``shop/web-0`` (labels ``app=web``, ports ``http`` 8080 and ``db`` 3306), the
port asked about, and the ``InboundServer`` Linkerd's policy controller would
serve for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

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
from mesh.policy.resources import (
    LabelSelector,
    Namespace,
    NetworkAuthentication,
    NetworkMatch,
    Requirement,
    ServerAuthorization,
)
from mesh.policy.snapshot import PolicyObject
from tests.policy.support import (
    ANY_IDENTITY,
    CLUSTER_NETWORKS,
    CONFIG,
    default,
    identity,
    meshtls,
    namespace,
    networks,
    pod,
    policy,
    ref,
    server,
)

WEB = pod()
SRV = Ref("policy.linkerd.io", "server", "web-http")


def ap(name: str) -> Ref:
    return Ref("policy.linkerd.io", "authorizationpolicy", name)


def served(*authorizations: Authorization, protocol: Protocol = Protocol.DETECT) -> InboundServer:
    """The policy of a port that Server ``web-http`` selects."""
    return InboundServer(SRV, protocol, authorizations)


def only(*ids: str, suffixes: Sequence[str] = ()) -> TlsAuthenticated:
    return TlsAuthenticated(tuple(ids), tuple(suffixes))


@dataclass(frozen=True)
class Scenario:
    name: str
    objects: Sequence[PolicyObject]
    expected: InboundServer
    port: int = 8080

    def __str__(self) -> str:
        return self.name


SCENARIOS = [
    Scenario("no server: the default policy", [], default("all-unauthenticated")),
    Scenario("a server nothing authorizes denies", [server()], served()),
    Scenario("a server selects a port by number", [server(port=8080)], served()),
    Scenario(
        "a server of another port leaves the default",
        [server(port=9090)],
        default("all-unauthenticated"),
    ),
    Scenario(
        "a server of other pods leaves the default",
        [server(selector={"app": "api"})],
        default("all-unauthenticated"),
    ),
    Scenario(
        "a server of another namespace leaves the default",
        [server(ns="other")],
        default("all-unauthenticated"),
    ),
    Scenario(
        "an expression selector",
        [
            replace(
                server(),
                pod_selector=LabelSelector(
                    match_expressions=(Requirement("app", "In", ("web", "api")),)
                ),
            )
        ],
        served(),
    ),
    Scenario(
        "a server that selects external workloads only",
        [replace(server(), pod_selector=None)],
        default("all-unauthenticated"),
    ),
    Scenario(
        "a server the converter refused is ignored",
        [replace(server(), error="spec.port is missing")],
        default("all-unauthenticated"),
    ),
    Scenario(
        "the older of two servers wins",
        [
            server("b-newer", created="2025-02-01T00:00:00Z"),
            server("web-http", created="2025-01-01T00:00:00Z"),
        ],
        served(),
    ),
    Scenario(
        "opaque server",
        [server(protocol="opaque")],
        served(protocol=Protocol.OPAQUE),
    ),
    Scenario("HTTP/1 server", [server(protocol="HTTP/1")], served(protocol=Protocol.HTTP1)),
    Scenario("TLS server is opaque", [server(protocol="TLS")], served(protocol=Protocol.OPAQUE)),
    Scenario("gRPC server is detected", [server(protocol="gRPC")], served()),
    Scenario(
        "a server overrides the opaque-ports annotation",
        [server(port="db")],
        served(),
        port=3306,
    ),
    Scenario(
        "a server on the admin port does not take it over",
        [server(port=4191, protocol="opaque")],
        default("all-unauthenticated"),
        port=4191,
    ),
    Scenario(
        "CONF-34: a MeshTLSAuthentication naming one identity",
        [
            server(),
            policy("web-authz", ref("MeshTLSAuthentication", "client")),
            meshtls("client", identity("client")),
        ],
        served(Authorization(ap("web-authz"), ALL_NETWORKS, only(identity("client")))),
    ),
    Scenario(
        "identity patterns and refs",
        [
            server(),
            policy("web-authz", ref("MeshTLSAuthentication", "client")),
            meshtls(
                "client",
                "*.ops.serviceaccount.identity.linkerd.mesh.example",
                refs=[
                    ref("ServiceAccount", "client", group=""),
                    ref("ServiceAccount", "gw", group="", ns="linkerd-multicluster"),
                    ref("Namespace", "batch", group="core"),
                ],
            ),
        ],
        served(
            Authorization(
                ap("web-authz"),
                ALL_NETWORKS,
                only(
                    identity("client"),
                    identity("gw", "linkerd-multicluster"),
                    suffixes=[
                        "ops.serviceaccount.identity.linkerd.mesh.example",
                        "batch.serviceaccount.identity.linkerd.mesh.example",
                    ],
                ),
            )
        ),
    ),
    Scenario(
        "* admits every identity",
        [
            server(),
            policy("web-authz", ref("MeshTLSAuthentication", "anyone")),
            meshtls("anyone", "*"),
        ],
        served(Authorization(ap("web-authz"), ALL_NETWORKS, ANY_IDENTITY)),
    ),
    Scenario(
        "a ServiceAccount referenced directly",
        [server(), policy("web-authz", ref("ServiceAccount", "client", group="", ns="batch"))],
        served(Authorization(ap("web-authz"), ALL_NETWORKS, only(identity("client", "batch")))),
    ),
    Scenario(
        "a MeshTLSAuthentication in another namespace",
        [
            server(),
            policy("web-authz", ref("MeshTLSAuthentication", "shared", ns="policies")),
            meshtls("shared", identity("client"), ns="policies"),
        ],
        served(Authorization(ap("web-authz"), ALL_NETWORKS, only(identity("client")))),
    ),
    Scenario(
        "CONF-37: a NetworkAuthentication alone admits unauthenticated clients by CIDR",
        [
            server(),
            policy("web-authz", ref("NetworkAuthentication", "office")),
            networks("office", ("10.0.0.0/8", ["10.9.0.0/16"]), "fd00::/8"),
        ],
        served(
            Authorization(
                ap("web-authz"),
                (Network("10.0.0.0/8", ("10.9.0.0/16",)), Network("fd00::/8")),
                Unauthenticated(),
            )
        ),
    ),
    Scenario(
        "CONF-37: every referenced authentication must admit",
        [
            server(),
            policy(
                "web-authz",
                ref("MeshTLSAuthentication", "client"),
                ref("NetworkAuthentication", "office"),
            ),
            meshtls("client", identity("client")),
            networks("office", "10.1.0.0/16"),
        ],
        served(Authorization(ap("web-authz"), (Network("10.1.0.0/16"),), only(identity("client")))),
    ),
    Scenario(
        "a policy naming a missing authentication is ignored",
        [
            server(),
            policy(
                "web-authz",
                ref("MeshTLSAuthentication", "client"),
                ref("NetworkAuthentication", "missing"),
            ),
            meshtls("client", identity("client")),
        ],
        served(),
    ),
    Scenario(
        "a policy naming two MeshTLSAuthentications is ignored",
        [
            server(),
            policy(
                "web-authz",
                ref("MeshTLSAuthentication", "a"),
                ref("MeshTLSAuthentication", "b"),
            ),
            meshtls("a", identity("a")),
            meshtls("b", identity("b")),
        ],
        served(),
    ),
    Scenario(
        "a policy naming an unsupported authentication is ignored",
        [server(), policy("web-authz", ref("Secret", "x", group=""))],
        served(),
    ),
    Scenario(
        "a MeshTLSAuthentication naming nobody is ignored",
        [
            server(),
            policy("web-authz", ref("MeshTLSAuthentication", "nobody")),
            meshtls("nobody"),
        ],
        served(),
    ),
    Scenario(
        "a refused NetworkAuthentication is missing",
        [
            server(),
            policy("web-authz", ref("NetworkAuthentication", "bad")),
            NetworkAuthentication("shop", "bad", error="spec.networks is empty"),
        ],
        served(),
    ),
    Scenario(
        "a policy without authentications admits everyone",
        [server(), policy("open")],
        served(Authorization(ap("open"), ALL_NETWORKS, Unauthenticated())),
    ),
    Scenario(
        "policies of other servers and route policies do not apply",
        [
            server(),
            policy("other", target=ref("Server", "web-grpc")),
            policy("route", target=ref("HTTPRoute", "web-http")),
        ],
        served(),
    ),
    Scenario(
        "a namespace-wide policy applies to every server",
        [server(), policy("everyone", target=ref("Namespace", "shop", group=""))],
        served(Authorization(ap("everyone"), ALL_NETWORKS, Unauthenticated())),
    ),
    Scenario(
        "policies of another namespace do not apply",
        [server(), policy("elsewhere", ns="other")],
        served(),
    ),
    Scenario(
        "several policies are authorizations in name order",
        [server(), policy("b-open"), policy("a-open")],
        served(
            Authorization(ap("a-open"), ALL_NETWORKS, Unauthenticated()),
            Authorization(ap("b-open"), ALL_NETWORKS, Unauthenticated()),
        ),
    ),
    Scenario(
        "accessPolicy adds its default authorization",
        [server(access_policy="cluster-authenticated"), policy("open")],
        served(
            Authorization(ap("open"), ALL_NETWORKS, Unauthenticated()),
            Authorization(Ref.default("cluster-authenticated"), CLUSTER_NETWORKS, ANY_IDENTITY),
        ),
    ),
    Scenario(
        "accessPolicy deny adds nothing",
        [server(access_policy="deny")],
        served(),
    ),
    Scenario(
        "a ServerAuthorization by name; no networks means the cluster's",
        [
            server(),
            ServerAuthorization("shop", "web-saz", server_name="web-http", unauthenticated=True),
        ],
        served(
            Authorization(
                Ref("policy.linkerd.io", "serverauthorization", "web-saz"),
                CLUSTER_NETWORKS,
                Unauthenticated(),
            )
        ),
    ),
    Scenario(
        "a ServerAuthorization by selector with identities and service accounts",
        [
            server(labels={"tier": "front"}),
            ServerAuthorization(
                "shop",
                "front-saz",
                server_selector=LabelSelector({"tier": "front"}),
                networks=(NetworkMatch("0.0.0.0/0"),),
                identities=("*.batch.serviceaccount.identity.linkerd.mesh.example",),
                service_accounts=(("", "client"), ("ops", "probe")),
            ),
            ServerAuthorization(
                "shop",
                "back-saz",
                server_selector=LabelSelector({"tier": "back"}),
                unauthenticated=True,
            ),
            ServerAuthorization("shop", "nobody", server_name="web-http"),
        ],
        served(
            Authorization(
                Ref("policy.linkerd.io", "serverauthorization", "front-saz"),
                (Network("0.0.0.0/0"),),
                only(
                    identity("client"),
                    identity("probe", "ops"),
                    suffixes=["batch.serviceaccount.identity.linkerd.mesh.example"],
                ),
            )
        ),
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_scenario(scenario: Scenario) -> None:
    objects: list[PolicyObject] = [WEB, namespace(), *scenario.objects]
    snapshot = PolicySnapshot.of(objects)
    got = inbound_server(snapshot, CONFIG, WEB, scenario.port)
    assert got == scenario.expected


def test_servers_replace_the_default_policy_whatever_it_is() -> None:
    p = pod(annotations={"config.linkerd.io/default-inbound-policy": "deny"})
    objects: list[PolicyObject] = [
        p,
        server(),
        policy("open"),
        Namespace("shop"),
    ]
    snapshot = PolicySnapshot.of(objects)
    assert inbound_server(snapshot, CONFIG, p, 8080) == served(
        Authorization(ap("open"), ALL_NETWORKS, Unauthenticated())
    )
    assert inbound_server(snapshot, CONFIG, p, 3306) == default("deny", Protocol.OPAQUE)
