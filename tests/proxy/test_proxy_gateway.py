"""Gateway mode end to end on loopback: client proxy -> gateway proxy -> target proxy -> app.

Three proxies run in-process under one trust anchor. The client's discovery
resolves the mirror service to the gateway with the gateway's identity and
the remote authority (as destination does for a gateway-mode mirror); the
gateway's discovery resolves that authority to the target proxy. The
gateway's inbound connections are not redirected, so it sees them as direct.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest

from mesh.proxy.discovery import Add, Address, Endpoint, labels
from mesh.proxy.origdst import SocketLike, fixed_destination
from mesh.proxy.policy import PolicySource, StaticPolicy
from mesh.proxy.server import Proxy
from mesh.proxy.tls import TlsCredentials, TlsStore, client_context
from tests.leaks import assert_no_leaked_tasks
from tests.proxy.proxy_support import (
    LOOPBACK,
    FakeDiscovery,
    Mesh,
    Seen,
    identity,
    loopback_config,
    port_of,
    start_echo_app,
    start_http_app,
)

MIRROR = Address("10.43.0.20", 8080)
"""The mirror service ``bb-target`` the client's app calls."""
REMOTE = "bb.demo.svc.target:8080"
"""Its remote authority (``remote-svc-fq-name:port``)."""
CLIENT_ID = identity("web")
SERVER_ID = identity("bb")
GATEWAY_ID = identity("linkerd-gateway", "linkerd-multicluster")


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()


def not_redirected(sock: SocketLike) -> Address:
    raise OSError("connection was not redirected")


@dataclass
class Chain:
    client: Proxy
    gateway: Proxy
    target: Proxy
    seen: Seen

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://{LOOPBACK}:{self.client.outbound_port}",
            headers={"host": "bb-target.demo.svc.source:8080"},
            timeout=10,
        )


@contextlib.asynccontextmanager
async def chain(
    mesh: Mesh,
    *,
    gateway_identity: str = GATEWAY_ID,
    gateway_policy: PolicySource | None = None,
    echo: bool = False,
) -> AsyncIterator[Chain]:
    """The three proxies; connects (and handshakes) may take 5 s on a loaded machine.

    ``gateway_policy``: the gateway port's inbound policy (default: all-unauthenticated);
    ``echo``: the target app is a TCP echo server instead of the HTTP app.
    """
    seen = Seen()
    app = await start_echo_app() if echo else await start_http_app(seen)
    gateway_discovery = FakeDiscovery()
    client_discovery = FakeDiscovery()
    target = Proxy(
        loopback_config(connect=5.0),
        discovery=FakeDiscovery(),
        policy=StaticPolicy(),
        tls=TlsStore(mesh.credentials(SERVER_ID)),
        inbound_destination=fixed_destination(Address(LOOPBACK, port_of(app))),
    )
    gateway = Proxy(
        replace(loopback_config(connect=5.0), gateway_suffixes=("svc.target",)),
        discovery=gateway_discovery,
        policy=gateway_policy or StaticPolicy(),
        tls=TlsStore(mesh.credentials(gateway_identity)),
        inbound_destination=not_redirected,
    )
    client = Proxy(
        loopback_config(connect=5.0),
        discovery=client_discovery,
        policy=StaticPolicy(),
        tls=TlsStore(mesh.credentials(CLIENT_ID)),
        outbound_destination=fixed_destination(MIRROR),
    )
    try:
        async with target, gateway, client:
            gateway_discovery.push(
                REMOTE,
                Add(
                    (Endpoint(Address(LOOPBACK, target.inbound_port), identity=SERVER_ID),),
                    labels(namespace="demo", service="bb"),
                ),
            )
            via_gateway = Endpoint(
                Address(LOOPBACK, gateway.inbound_port),
                identity=GATEWAY_ID,
                authority_override=REMOTE,
                labels=labels(target_cluster="target", target_service="bb"),
            )
            client_discovery.push(
                str(MIRROR), Add((via_gateway,), labels(namespace="demo", service="bb-target"))
            )
            yield Chain(client, gateway, target, seen)
    finally:
        app.close()
        await app.wait_closed()


async def metrics(proxy: Proxy) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://{LOOPBACK}:{proxy.admin_port}/metrics")
    return response.text


def series(text: str, name: str, **want: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels_part, value = line[len(name) :].rsplit(" ", 1)
            if all(f'{k}="{v}"' in labels_part for k, v in want.items()):
                total += float(value)
    return total


async def test_a_meshed_client_reaches_the_target_through_the_gateway(mesh: Mesh) -> None:
    """CONF-19: the target sees the gateway's identity; every hop is mTLS (CONF-33)."""
    async with chain(mesh) as c, c.http() as http:
        for n in range(3):
            response = await http.get(f"/hello/{n}")
            assert response.status_code == 200, response.headers.get("l5d-proxy-error")
            assert response.text == f"app /hello/{n} {GATEWAY_ID}"
        client_metrics = await metrics(c.client)
        gateway_metrics = await metrics(c.gateway)
    first = c.seen.requests[0]
    assert first["host"] == REMOTE
    assert first["forwarded"] == f'by="{GATEWAY_ID}";for="{CLIENT_ID}"'
    assert (
        series(
            client_metrics,
            "response_total",
            direction="outbound",
            tls="true",
            server_id=GATEWAY_ID,
            dst_target_cluster="target",
            dst_target_service="bb",
            status_code="200",
        )
        == 3
    )
    assert (
        series(
            gateway_metrics,
            "response_total",
            direction="outbound",
            authority=REMOTE,
            tls="true",
            server_id=SERVER_ID,
            status_code="200",
        )
        == 3
    )
    assert c.client.outbound.pool.opened == 1


async def test_the_gateway_must_present_the_identity_discovery_named(mesh: Mesh) -> None:
    async with chain(mesh, gateway_identity=identity("impostor")) as c, c.http() as http:
        response = await http.get("/")
    assert response.status_code == 502
    assert "connect to" in response.headers["l5d-proxy-error"]
    assert c.seen.requests == []


async def raw_exchange(
    port: int, request: bytes, *, context: ssl.SSLContext | None = None, sni: str | None = None
) -> bytes:
    """Send ``request`` on a new connection (TLS with ``context``); everything until EOF."""
    try:
        reader, writer = await asyncio.open_connection(
            LOOPBACK, port, ssl=context, server_hostname=sni if context else None
        )
    except (ConnectionError, ssl.SSLError):
        return b""
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), timeout=10)
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def get(authority: str, *extra: str) -> bytes:
    lines = ["GET / HTTP/1.1", f"host: {authority}", "connection: close", *extra, "", ""]
    return "\r\n".join(lines).encode()


async def test_a_plaintext_client_is_closed_without_an_answer(mesh: Mesh) -> None:
    """CONF-20: an unmeshed client gets nothing from the gateway port."""
    async with chain(mesh) as c:
        answer = await raw_exchange(c.gateway.inbound_port, get(REMOTE))
        text = await metrics(c.gateway)
    assert answer == b""
    assert c.seen.requests == []
    assert series(text, "inbound_gateway_refused_total", reason="plaintext") == 1


def anonymous_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.mark.parametrize(
    ("make_context", "sni", "reason"),
    [
        (lambda mesh, other: anonymous_tls(), GATEWAY_ID, "no_client_identity"),
        (lambda mesh, other: anonymous_tls(), "app.example.com", "wrong_server_name"),
        (
            lambda mesh, other: client_context(other.credentials(CLIENT_ID, trust=mesh)),
            GATEWAY_ID,
            "handshake_failed",
        ),
    ],
    ids=["tls-without-client-certificate", "tls-for-another-name", "client-of-another-anchor"],
)
async def test_clients_without_a_mesh_identity_are_refused(
    mesh: Mesh, make_context: object, sni: str, reason: str
) -> None:
    """CONF-20: TLS is not enough; the client must prove an identity under the anchor."""
    other = Mesh()
    assert callable(make_context)
    context = make_context(mesh, other)
    async with chain(mesh) as c:
        answer = await raw_exchange(c.gateway.inbound_port, get(REMOTE), context=context, sni=sni)
        text = await metrics(c.gateway)
    assert b"200 OK" not in answer
    assert c.seen.requests == []
    assert series(text, "inbound_gateway_refused_total", reason=reason) == 1


def mtls(mesh: Mesh) -> ssl.SSLContext:
    creds: TlsCredentials = mesh.credentials(CLIENT_ID)
    return client_context(creds)


@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (get("evil.example.com:80"), b"403", b"is not a service of this cluster"),
        (get("bb.demo.svc.source:8080"), b"403", b"is not a service of this cluster"),
        (get("x.a.bb.demo.svc.target:8080"), b"403", b"is not a service of this cluster"),
        (get("bb.demo.svc.target"), b"400", b"is not <service name>:<port>"),
        (get(REMOTE, f'forwarded: by="{GATEWAY_ID}";for="x"'), b"502", b"gateway loop detected"),
    ],
    ids=["outside-the-cluster", "another-cluster-domain", "not-a-service", "no-port", "loop"],
)
async def test_requests_the_gateway_does_not_route(
    mesh: Mesh, request_bytes: bytes, status: bytes, error: bytes
) -> None:
    """No open proxy: only ``<svc>.<ns>.svc.<this domain>:<port>`` is routed."""
    async with chain(mesh) as c:
        answer = await raw_exchange(
            c.gateway.inbound_port, request_bytes, context=mtls(mesh), sni=GATEWAY_ID
        )
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 " + status), answer
    assert b"l5d-proxy-error: " in head, answer
    assert error.lower() in head, answer
    assert c.seen.requests == []


async def test_a_direct_mtls_client_is_routed_and_its_identity_header_replaced(
    mesh: Mesh,
) -> None:
    async with chain(mesh) as c:
        forged = get(REMOTE, f"l5d-client-id: {identity('admin')}")
        answer = await raw_exchange(
            c.gateway.inbound_port, forged, context=mtls(mesh), sni=GATEWAY_ID
        )
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(f"app / {GATEWAY_ID}".encode())


async def test_a_proxy_that_is_no_gateway_closes_direct_connections(mesh: Mesh) -> None:
    """Without gateway mode a direct connection would be delivered to the proxy itself."""
    proxy = Proxy(
        loopback_config(),
        discovery=FakeDiscovery(),
        policy=StaticPolicy(),
        tls=TlsStore(mesh.credentials(SERVER_ID)),
        inbound_destination=not_redirected,
    )
    async with proxy:
        plain = await raw_exchange(proxy.inbound_port, get(REMOTE))
        secured = await raw_exchange(
            proxy.inbound_port, get(REMOTE), context=mtls(mesh), sni=SERVER_ID
        )
    assert plain == b""
    assert secured == b""


def test_a_headless_services_host_is_routed_and_nothing_deeper() -> None:
    """CONF-29: per-host mirrors route ``<pod>.<svc>.<ns>.svc.<domain>``; no open proxy."""
    from mesh.proxy.gateway import GatewaySettings

    settings = GatewaySettings.parse("svc.target.")
    assert settings.allows("db-0.db.demo.svc.target")
    assert settings.allows("bb.demo.svc.target.")
    assert not settings.allows("x.db-0.db.demo.svc.target")
    assert not settings.allows("demo.svc.target")
    assert not settings.allows("db-0..demo.svc.target")
