"""The policy client: ``Server`` messages mapped, ports watched, the default policy as fallback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from grpc import aio

from mesh.k8s.annotations import PortRanges
from mesh.proto import inbound_pb2 as ipb
from mesh.proxy.backoff import BackoffSettings
from mesh.proxy.envconfig import InboundSettings, PolicySettings, ServiceAddr
from mesh.proxy.policy import (
    ALL_NETWORKS,
    Allow,
    Client,
    Deny,
    MeshTls,
    Network,
    ProxyProtocol,
    Unauthenticated,
    authorize,
)
from mesh.proxy.policy_client import (
    MAX_WATCHED_PORTS,
    PolicyClient,
    default_policy_server,
    server_from,
)
from mesh.proxy.runtime import CHANNEL_OPTIONS
from tests.proxy.proxy_support import LOOPBACK, identity
from tests.proxy_runtime.runtime_support import (
    FakePolicy,
    GrpcServer,
    policy_server,
    wait_until,
)

CLUSTER = (Network.parse("10.0.0.0/8"),)
QUICK = BackoffSettings(initial=0.02, maximum=0.1)


def tls_only(*identities: str, suffixes: tuple[str, ...] = ()) -> ipb.Authn:
    return ipb.Authn(
        tls_authenticated=ipb.Authn.PermitTls(identities=identities, suffixes=suffixes)
    )


def server_message(*authzs: ipb.Authz, protocol: str = "http1", name: str = "bb") -> ipb.Server:
    message = ipb.Server(
        authorizations=authzs, labels={"name": name, "kind": "server", "group": "policy.linkerd.io"}
    )
    getattr(message.protocol, protocol).SetInParent()
    return message


def authz(name: str, authn: ipb.Authn, *nets: str) -> ipb.Authz:
    return ipb.Authz(
        networks=[ipb.Network(net=n) for n in nets or ("0.0.0.0/0",)],
        authentication=authn,
        labels={"name": name, "kind": "authorizationpolicy"},
    )


# --- mapping, sans I/O ------------------------------------------------------------------


def test_a_server_message_maps_to_the_proxys_server() -> None:
    """CONF-34's shape: one identity admitted, over mTLS, from anywhere."""
    web = identity("web")
    message = server_message(
        authz("bb-web", tls_only(web)),
        authz("bb-ns", tls_only(suffixes=("demo.serviceaccount.identity.linkerd.cluster.local",))),
        authz("bb-any", tls_only(suffixes=("",))),
    )
    server = server_from(message)
    assert (server.name, server.kind, server.group, server.protocol) == (
        "bb",
        "server",
        "policy.linkerd.io",
        ProxyProtocol.HTTP1,
    )
    first, by_namespace, anyone = server.authorizations
    assert first.authentication == MeshTls((web,))
    assert (first.name, first.kind, first.group) == (
        "bb-web",
        "authorizationpolicy",
        "policy.linkerd.io",
    )
    assert by_namespace.authentication == MeshTls(
        ("*.demo.serviceaccount.identity.linkerd.cluster.local",)
    )
    assert anyone.authentication == MeshTls(("*",))
    assert first.networks == (Network.parse("0.0.0.0/0"),)


def deny_with_probes(*paths: str) -> ipb.Server:
    """The policy service's ``deny`` default for a port the kubelet probes at ``paths``."""
    return ipb.Server(
        labels={"name": "deny", "kind": "default", "group": ""}, probe_paths=list(paths)
    )


@pytest.mark.parametrize(
    ("method", "path", "admitted"),
    [
        ("GET", "/healthz", True),
        ("GET", "/healthz?verbose=1", True),
        ("HEAD", "/healthz", True),
        ("GET", "/other", False),
        ("GET", "/healthz/more", False),
        ("POST", "/healthz", False),
        (None, None, False),
    ],
)
def test_probe_paths_of_a_deny_server_admit_plaintext_gets(
    method: str | None, path: str | None, admitted: bool
) -> None:
    server = server_from(deny_with_probes("/healthz"))
    assert (server.name, server.kind, server.authorizations) == ("deny", "default", ())
    assert server.probe_paths == ("/healthz",)
    decision = authorize(server, Client.of(None, "192.168.0.1"), method=method, path=path)
    assert isinstance(decision, Allow) is admitted
    if isinstance(decision, Allow):
        assert (decision.authorization.name, decision.authorization.kind) == ("probe", "default")


def test_a_server_without_probe_paths_has_none() -> None:
    assert server_from(server_message()).probe_paths == ()


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        (Client.of(identity("web"), "10.42.0.5"), "bb-web"),
        (Client.of(identity("other"), "10.42.0.5"), "bb-cluster"),
        (Client.of(None, "10.42.0.5"), "bb-cluster"),
        (Client.of(None, "10.9.0.5"), None),
        (Client.of(None, "192.168.0.1"), None),
    ],
)
def test_mapped_authorizations_decide_as_written(client: Client, allowed: str | None) -> None:
    """CONF-37: networks with exceptions; all constraints of an authorization must hold."""
    unauthenticated = ipb.Authn(unauthenticated=ipb.Authn.PermitUnauthenticated())
    cluster = ipb.Authz(
        networks=[ipb.Network(net="10.0.0.0/8", **{"except": ["10.9.0.0/16"]})],
        authentication=unauthenticated,
        labels={"name": "bb-cluster"},
    )
    server = server_from(server_message(authz("bb-web", tls_only(identity("web"))), cluster))
    decision = authorize(server, client)
    assert getattr(getattr(decision, "authorization", None), "name", None) == allowed


def test_authorizations_that_cannot_be_understood_admit_nobody() -> None:
    no_authn = ipb.Authz(networks=[ipb.Network(net="0.0.0.0/0")], labels={"name": "x"})
    bad_net = authz(
        "y", ipb.Authn(unauthenticated=ipb.Authn.PermitUnauthenticated()), "10.0.0.0/99"
    )
    no_networks = ipb.Authz(
        authentication=ipb.Authn(unauthenticated=ipb.Authn.PermitUnauthenticated()),
        labels={"name": "z"},
    )
    server = server_from(server_message(no_authn, bad_net, no_networks))
    assert [a.name for a in server.authorizations] == ["z"]
    assert server.authorizations[0].networks == ()
    assert authorize(server, Client.of(None, "10.0.0.1")).__class__.__name__ == "Deny"


@pytest.mark.parametrize(
    ("policy", "client", "admitted"),
    [
        ("all-unauthenticated", Client.of(None, "192.168.1.1"), True),
        ("cluster-unauthenticated", Client.of(None, "192.168.1.1"), False),
        ("cluster-unauthenticated", Client.of(None, "10.1.1.1"), True),
        ("cluster-authenticated", Client.of(None, "10.1.1.1"), False),
        ("cluster-authenticated", Client.of(identity("web"), "10.1.1.1"), True),
        ("all-authenticated", Client.of(identity("web"), "192.168.1.1"), True),
        ("deny", Client.of(identity("web"), "10.1.1.1"), False),
        ("audit", Client.of(None, "192.168.1.1"), True),
    ],
)
def test_default_policies(policy: str, client: Client, admitted: bool) -> None:
    """CONF-36: the default policies behave as named."""
    server = default_policy_server(policy, cluster_networks=CLUSTER)
    assert (server.name, server.kind) == (policy, "default")
    assert (authorize(server, client).__class__.__name__ == "Allow") is admitted


def test_audit_admits_everyone_from_anywhere() -> None:
    server = default_policy_server("audit", cluster_networks=CLUSTER, opaque=True)
    assert server.protocol is ProxyProtocol.OPAQUE
    assert server.authorizations[0].networks == ALL_NETWORKS
    assert server.authorizations[0].authentication == Unauthenticated()


# --- watches, against a fake policy service ----------------------------------------------


INBOUND = InboundSettings(
    default_policy="cluster-unauthenticated",
    ports=(8080,),
    opaque_ports=PortRanges.of(3306),
    cluster_networks=CLUSTER,
)


@contextlib.asynccontextmanager
async def client_for(server: GrpcServer | None) -> AsyncIterator[PolicyClient]:
    if server is None:
        client = PolicyClient(INBOUND, None, None, backoff=QUICK)
        try:
            yield client
        finally:
            await client.close()
        return
    settings = PolicySettings(ServiceAddr(LOOPBACK, server.port), workload="demo:bb-0")
    async with aio.insecure_channel(settings.svc.grpc_target, options=CHANNEL_OPTIONS) as channel:
        client = PolicyClient(INBOUND, settings, channel, backoff=QUICK)
        try:
            client.start()
            yield client
        finally:
            await client.close()


async def test_declared_ports_are_watched_and_updated() -> None:
    fake = FakePolicy()
    fake.set(8080, server_message(authz("bb-web", tls_only(identity("web")))))
    async with policy_server(fake) as server, client_for(server) as client:
        await wait_until(lambda: client.known(8080))
        assert client.server(8080).name == "bb"
        fake.set(8080, server_message(name="bb-v2"))
        await wait_until(lambda: client.server(8080).name == "bb-v2")
    assert fake.watched[0] == ("demo:bb-0", 8080)


async def test_probe_paths_arrive_with_the_ports_policy() -> None:
    fake = FakePolicy()
    fake.set(8080, deny_with_probes("/healthz", "/ready"))
    async with policy_server(fake) as server, client_for(server) as client:
        await wait_until(lambda: client.known(8080))
        probed = client.server(8080)
        kubelet = Client.of(None, "10.0.0.7")
        assert isinstance(authorize(probed, kubelet, method="GET", path="/ready"), Allow)
        assert isinstance(authorize(probed, kubelet, method="GET", path="/other"), Deny)


async def test_other_ports_get_the_default_until_answered() -> None:
    fake = FakePolicy()
    fake.set(9090, server_message(name="metrics"))
    async with policy_server(fake) as server, client_for(server) as client:
        first = client.server(9090)
        assert (first.name, first.kind) == ("cluster-unauthenticated", "default")
        await wait_until(lambda: client.server(9090).name == "metrics")
        assert client.server(3306).protocol is ProxyProtocol.OPAQUE
        assert client.server(3306) is client.server(3306)


async def test_without_the_policy_service_the_default_applies_and_is_retried() -> None:
    """The service is down at first: default policy; when it comes up, its answer applies;
    when it goes down again, the last answer stays."""
    fake = FakePolicy()
    fake.set(8080, server_message(name="bb"))
    server = policy_server(fake)
    try:
        async with client_for(server) as client:
            assert client.server(8080).name == "cluster-unauthenticated"
            await server.start()
            await wait_until(lambda: client.server(8080).name == "bb")
            await server.stop()
            before = client.answers
            await server.start()
            await wait_until(lambda: client.answers > before)
            assert client.server(8080).name == "bb"
    finally:
        await server.stop()


async def test_no_policy_service_configured() -> None:
    async with client_for(None) as client:
        client.start()
        assert client.server(8080).name == "cluster-unauthenticated"
        assert not client.known(8080)


async def test_watches_are_capped() -> None:
    fake = FakePolicy()
    async with policy_server(fake) as server, client_for(server) as client:
        for port in range(20000, 20000 + MAX_WATCHED_PORTS + 10):
            client.server(port)
        await wait_until(lambda: len(fake.watched) >= MAX_WATCHED_PORTS)
        assert client.server(65000).kind == "default"
    assert len(fake.watched) == MAX_WATCHED_PORTS
