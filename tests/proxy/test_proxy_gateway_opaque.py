"""The gateway's port policy and opaque TCP through the gateway, on loopback.

Three proxies as in ``test_proxy_gateway``: client -> gateway -> target. The
gateway port's policy is the ``Server`` the gateway's ``PolicySource`` gives
for its inbound port (issue 6: a Server selecting 4143 must be honoured). An
opaque stream (not HTTP) to a gateway-mode mirror reaches the remote service
with a transport header naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from mesh.proxy.policy import Authorization, MeshTls, Server, StaticPolicy, parse_networks
from mesh.proxy.transport_header import encode
from tests.leaks import assert_no_leaked_tasks
from tests.proxy.proxy_support import LOOPBACK, Mesh, identity
from tests.proxy.test_proxy_gateway import (
    CLIENT_ID,
    GATEWAY_ID,
    REMOTE,
    chain,
    metrics,
    mtls,
    raw_exchange,
    series,
)

PAYLOAD = b"\x01\x02 opaque bytes, not HTTP \xff" * 100
WAIT = 10.0


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


def gateway_server(*authorizations: Authorization) -> StaticPolicy:
    """The gateway port's policy: the ``linkerd-gateway`` Server with ``authorizations``."""
    server = Server("linkerd-gateway", authorizations=authorizations)
    return StaticPolicy(default=server)


ANY_MESHED = Authorization("any-meshed", authentication=MeshTls(("*",)))
ONLY_OTHERS = Authorization("only-others", authentication=MeshTls((identity("other"),)))
OTHER_NETWORK = Authorization(
    "other-network", authentication=MeshTls(("*",)), networks=parse_networks(["10.0.0.0/8"])
)


async def echo_through(port: int, payload: bytes = PAYLOAD) -> bytes:
    """Send ``payload`` to the client proxy's outbound port, half-close, read until EOF."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(WAIT):
            return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_an_opaque_stream_reaches_the_remote_service_through_the_gateway(
    mesh: Mesh,
) -> None:
    async with chain(mesh, echo=True, gateway_policy=gateway_server(ANY_MESHED)) as c:
        echoed = await echo_through(c.client.outbound_port)
        gateway_metrics = await metrics(c.gateway)
        client_metrics = await metrics(c.client)
    assert echoed == PAYLOAD, f"echo through the gateway: {len(echoed)} of {len(PAYLOAD)} bytes"
    # the client reached the gateway over mTLS, the gateway the target over mTLS
    assert series(client_metrics, "tcp_open_total", peer="dst", server_id=GATEWAY_ID) == 1
    assert series(gateway_metrics, "inbound_tcp_authz_allow_total", srv_name="linkerd-gateway") == 1
    assert series(gateway_metrics, "tcp_open_total", direction="outbound", peer="dst") == 1
    assert series(gateway_metrics, "inbound_gateway_refused_total") == 0


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (encode("evil.example.com:80") + PAYLOAD, "bad_target"),
        (encode("bb.demo.svc.target") + PAYLOAD, "bad_target"),
        (encode("bb.demo.svc.source:8080") + PAYLOAD, "bad_target"),
        (b"\x00isthmus-opaque/9\x00\x00\x01x" + PAYLOAD, "bad_target"),
        (b"\x00" + PAYLOAD, "bad_target"),
    ],
    ids=["outside-the-cluster", "no-port", "another-cluster-domain", "other-version", "nul"],
)
async def test_opaque_streams_the_gateway_does_not_route_are_closed(
    mesh: Mesh, stream: bytes, reason: str
) -> None:
    """No open proxy for opaque TCP either: the header must name a service of this cluster."""
    async with chain(mesh, echo=True) as c:
        answer = await raw_exchange(
            c.gateway.inbound_port, stream, context=mtls(mesh), sni=GATEWAY_ID
        )
        text = await metrics(c.gateway)
    assert answer == b"", f"the gateway answered {answer[:100]!r}"
    assert series(text, "inbound_gateway_refused_total", reason=reason) == 1


@pytest.mark.parametrize("authorization", [ONLY_OTHERS, OTHER_NETWORK], ids=["identity", "network"])
async def test_the_gateway_port_policy_denies_http_with_403(
    mesh: Mesh, authorization: Authorization
) -> None:
    """A Server selecting the gateway port is honoured: requests it does not admit get 403."""
    async with chain(mesh, gateway_policy=gateway_server(authorization)) as c, c.http() as http:
        response = await http.get("/denied")
        text = await metrics(c.gateway)
    assert response.status_code == 403, (response.status_code, response.text)
    assert c.seen.requests == [], "a denied request must not reach the target"
    assert series(text, "inbound_http_authz_deny_total", srv_name="linkerd-gateway") == 1


@pytest.mark.parametrize("authorization", [ONLY_OTHERS, OTHER_NETWORK], ids=["identity", "network"])
async def test_the_gateway_port_policy_closes_denied_opaque_streams(
    mesh: Mesh, authorization: Authorization
) -> None:
    async with chain(mesh, echo=True, gateway_policy=gateway_server(authorization)) as c:
        echoed = await echo_through(c.client.outbound_port)
        text = await metrics(c.gateway)
    assert echoed == b"", f"a denied stream got {len(echoed)} bytes back"
    assert series(text, "inbound_gateway_refused_total", reason="unauthorized") == 1
    assert series(text, "inbound_tcp_authz_deny_total", srv_name="linkerd-gateway") == 1


async def test_the_gateway_port_policy_admits_the_named_identity(mesh: Mesh) -> None:
    only_client = Authorization("web-only", authentication=MeshTls((CLIENT_ID,)))
    async with chain(mesh, gateway_policy=gateway_server(only_client)) as c, c.http() as http:
        response = await http.get("/allowed")
        text = await metrics(c.gateway)
    assert response.status_code == 200, response.headers.get("l5d-proxy-error")
    assert response.text == f"app /allowed {GATEWAY_ID}"
    assert (
        series(
            text,
            "inbound_http_authz_allow_total",
            srv_name="linkerd-gateway",
            authz_name="web-only",
            client_id=CLIENT_ID,
        )
        == 1
    )
    assert c.seen.requests[0]["host"] == REMOTE
