"""SEC-2: tap on its own port, over mTLS, for the identities allowed to tap only.

Real proxies on loopback (``running`` from the proxy server tests). The tap client
is httpx over TLS with a workload certificate, the server's identity as SNI and
checked name; the refused ones get the connection closed with no HTTP answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable

import httpx
import pytest

from mesh.proxy.envconfig import load
from mesh.proxy.http_requests import RequestLimits
from mesh.proxy.tap_server import tap_match
from mesh.proxy.telemetry import Direction
from mesh.proxy.tls import TlsCredentials, client_context
from tests.proxy.proxy_support import LOOPBACK, Mesh, identity
from tests.proxy.test_proxy_server import CLIENT_ID, SERVER_ID, running, wait_until

TAP_ID = identity("tap", "linkerd-viz")
WAIT = 10.0


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh()


def _tls(credentials: TlsCredentials | None, mesh: Mesh) -> ssl.SSLContext:
    if credentials is not None:
        return client_context(credentials)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=mesh.anchors_pem().decode())
    return context


async def _tap_lines(
    port: int, credentials: TlsCredentials, query: str, trigger: Callable[[], Awaitable[None]]
) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    url = f"https://{LOOPBACK}:{port}/tap?{query}"
    async with (
        httpx.AsyncClient(verify=client_context(credentials), timeout=WAIT) as tap,
        tap.stream("GET", url, extensions={"sni_hostname": SERVER_ID}) as stream,
    ):
        assert stream.status_code == 200
        await trigger()
        async for line in stream.aiter_lines():
            if line:
                lines.append(json.loads(line))
    return lines


async def test_an_allowed_identity_gets_request_and_response_events(mesh: Mesh) -> None:
    """CONF-38 over SEC-2: the allowed identity sees each response's HTTP status."""
    async with running(mesh, tap_identities=(TAP_ID,)) as pair:

        async def request() -> None:
            await wait_until(lambda: pair.server.tap.active)
            async with pair.http() as http:
                assert (await http.get("/tapped")).status_code == 200

        lines = await _tap_lines(
            pair.server.tap_port, mesh.credentials(TAP_ID), "limit=3&direction=inbound", request
        )
    kinds = [next(k for k in line if k.endswith("Event")) for line in lines]
    assert kinds == ["requestInitEvent", "responseInitEvent", "responseEndEvent"]
    assert lines[0]["proxyDirection"] == "INBOUND"
    assert lines[0]["requestInitEvent"]["path"] == "/tapped"  # type: ignore[index]
    assert lines[1]["responseInitEvent"]["httpStatus"] == 200  # type: ignore[index]
    assert lines[0]["source"]["metadata"]["client_id"] == CLIENT_ID  # type: ignore[index]


async def _answer(port: int, context: ssl.SSLContext | None) -> bytes:
    """Everything the tap port sends back to one ``GET /tap`` (TLS when ``context``)."""
    reader, writer = await asyncio.open_connection(
        LOOPBACK, port, ssl=context, server_hostname=SERVER_ID if context else None
    )
    try:
        writer.write(b"GET /tap HTTP/1.1\r\nhost: tap\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(WAIT):
            return await reader.read()
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


@pytest.mark.parametrize("who", ["no certificate", "plaintext", "not allowed", "other anchor"])
async def test_others_get_nothing(mesh: Mesh, who: str) -> None:
    other = Mesh()
    contexts = {
        "no certificate": _tls(None, mesh),
        "plaintext": None,
        "not allowed": _tls(mesh.credentials(CLIENT_ID), mesh),
        "other anchor": _tls(other.credentials(TAP_ID, trust=mesh), mesh),
    }
    async with running(mesh, tap_identities=(TAP_ID,)) as pair:
        try:
            answer = await _answer(pair.server.tap_port, contexts[who])
        except ssl.SSLError:
            answer = b""
        assert not pair.server.tap.active
        refused = pair.server.tap_server.refused if pair.server.tap_server else 0
    assert answer == b"", f"{who}: the tap port answered {answer[:200]!r}"
    assert refused == 1


async def test_without_allowed_identities_the_tap_port_is_not_served(mesh: Mesh) -> None:
    async with running(mesh) as pair:
        assert pair.server.tap_server is None
        with pytest.raises(KeyError):
            _ = pair.server.tap_port


def test_tap_queries_parse_and_bad_ones_are_refused() -> None:
    match, limit = tap_match("direction=outbound&authority=a.b&path=/x&method=GET&limit=5")
    assert (match.direction, match.authority, match.path_prefix, match.method, limit) == (
        Direction.OUTBOUND, "a.b", "/x", "GET", 5,
    )  # fmt: skip
    for bad in ("limit=0", "limit=x", "direction=sideways"):
        with pytest.raises(ValueError, match=r"limit|direction"):
            tap_match(bad)


def test_the_allowed_identities_come_from_the_environment() -> None:
    base = {"LINKERD2_PROXY_IDENTITY_DISABLED": "1"}
    other = identity("other", "ns")
    config = load({**base, "LINKERD2_PROXY_TAP_SVC_NAME": f"{TAP_ID}, {TAP_ID},{other}"})
    assert config.tap_identities == (TAP_ID, other)
    assert config.proxy_config().tap_identities == (), "without identity there is no mTLS tap"


async def _after(port: int, context: ssl.SSLContext, payload: bytes) -> tuple[bytes, float]:
    """What the tap port answers to ``payload`` (sent, never finished), and how long it took."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(
        LOOPBACK, port, ssl=context, server_hostname=SERVER_ID
    )
    try:
        started = loop.time()
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(WAIT):
            answer = await reader.read()
        return answer, loop.time() - started
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"GET /tap HTTP/1.1\r\nhost: tap\r\n", b"408"),  # a head that never ends
        (b"GET /tap HTTP/1.1\r\nhost: tap\r\nx: " + b"a" * 4096, b"431"),  # an oversized head
        (b"GET /tap HTTP/9.9 what\r\n\r\n", b"400"),  # not HTTP/1
        (b"POST /tap HTTP/1.1\r\nhost: tap\r\ncontent-length: 100\r\n\r\nshort", b"408"),
    ],
    ids=["slow head", "huge head", "malformed", "truncated body"],
)
async def test_an_allowed_client_that_misbehaves_gets_an_error_and_the_connection_closed(
    mesh: Mesh, payload: bytes, status: bytes
) -> None:
    """SEC-1 on the tap port: a request must arrive whole, in time and in bounds (as on admin)."""
    async with running(mesh, tap_identities=(TAP_ID,)) as pair:
        assert pair.server.tap_server is not None
        limits = RequestLimits(request=0.3, idle=5.0, max_head=1024, max_body=1024)
        pair.server.tap_server.limits = limits
        answer, took = await _after(
            pair.server.tap_port, _tls(mesh.credentials(TAP_ID), mesh), payload
        )
        assert not pair.server.tap.active, "a refused request must not subscribe to tap"
    assert answer.startswith(b"HTTP/1.1 " + status), f"expected {status!r}, got {answer[:200]!r}"
    assert b"connection: close" in answer.lower(), answer[:200]
    assert took < WAIT / 2, f"the tap port took {took:.1f}s to give up (limit {limits.request}s)"
