"""SEC-1 on the proxy's listeners: hostile input costs only its own connection.

Every case is sent to the inbound, outbound and admin listeners of a proxy
running on its own loop (see ``hostile_support``): the hostile connection must
end (with an error status where HTTP allows one) within a bound, and a
well-formed request on another connection must be answered promptly meanwhile.
The first case is issue 11's finding: a truncated body on the admin port used
to make the request loop spin, stopping the proxy's only event loop.
"""

from __future__ import annotations

import contextlib
import socket
import time
from asyncio.trsock import TransportSocket
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from mesh.proxy.admin import AdminLimits
from mesh.proxy.discovery import Address
from mesh.proxy.origdst import SocketLike
from tests.proxy.hostile_support import (
    HEALTHY_WITHIN,
    ThreadedProxy,
    connect,
    healthy_get,
    hostile_config,
    read_until_closed,
    status_of,
    wait_for,
)

LISTENERS = ("admin", "inbound", "outbound")
HEALTHY_PATH = {"admin": "/live", "inbound": "/hello", "outbound": "/hello"}
CLOSED_WITHIN = 3.0
"""A hostile connection must be closed by the proxy within this (limits are <= 1 s)."""


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    half_close: bool
    """Send FIN after ``data`` (a truncated request) instead of staying silent."""
    statuses: frozenset[int | None]
    """What the proxy may answer before closing (``None``: nothing)."""


_HEAD = b"GET /x HTTP/1.1\r\nHost: test\r\n"
CASES = [
    Case(
        "truncated-body",
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nabc",
        True,
        frozenset({None, 400, 502}),
    ),
    Case(
        "bad-chunked-body",
        b"POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        False,
        frozenset({None, 400, 502}),
    ),
    Case(
        "truncated-chunked-body",
        b"POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        True,
        frozenset({None, 400, 502}),
    ),
    Case("truncated-head", _HEAD + b"X-Partial: yes", True, frozenset({None, 400})),
    Case("garbage", b"GET /\x00\x01\x02 HTTP/1.1\r\n\r\n" * 3, False, frozenset({None, 400})),
    Case("bad-content-length", _HEAD + b"Content-Length: -5\r\n\r\n", False, frozenset({400})),
    Case(
        "oversized-head",
        _HEAD + b"X-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n",
        False,
        frozenset({None, 431, 400}),
    ),
    Case("slowloris-head", _HEAD + b"X-Slow: 1\r\n", False, frozenset({None, 408})),
    Case(
        "slowloris-body",
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\nabc",
        False,
        frozenset({None, 408, 502, 200}),
    ),
    Case("idle-keepalive", b"GET /x HTTP/1.1\r\nHost: test\r\n\r\n", False, frozenset({200, 404})),
]


@pytest.fixture(scope="module")
def proxy() -> Iterator[ThreadedProxy]:
    running = ThreadedProxy()
    try:
        yield running
    finally:
        running.close()


def _send(sock: socket.socket, data: bytes) -> None:
    # the proxy may refuse an oversized head before reading all of it
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_input_costs_only_its_connection(
    proxy: ThreadedProxy, listener: str, case: Case
) -> None:
    """SEC-1: the hostile connection ends in bounded time; a healthy one is served meanwhile."""
    port = proxy.port(listener)
    with connect(port) as sock:
        started = time.monotonic()
        _send(sock, case.data)
        if case.half_close:
            sock.shutdown(socket.SHUT_WR)
        status, took = healthy_get(port, HEALTHY_PATH[listener])
        healthy = (status, took < HEALTHY_WITHIN)
        assert healthy == (200, True), (
            f"{listener}: a healthy request during {case.name} got {status} after {took:.2f}s, "
            f"expected 200 within {HEALTHY_WITHIN}s"
        )
        try:
            response = read_until_closed(sock)
        except TimeoutError:
            pytest.fail(f"{listener}: the proxy kept the {case.name} connection open")
        elapsed = time.monotonic() - started
    assert elapsed < CLOSED_WITHIN, (
        f"{listener}: {case.name} connection closed after {elapsed:.2f}s, "
        f"expected within {CLOSED_WITHIN}s"
    )
    assert status_of(response) in case.statuses, (
        f"{listener}: {case.name} answered {response[:200]!r}, expected a status in "
        f"{sorted(case.statuses, key=str)}"
    )
    status, took = healthy_get(port, HEALTHY_PATH[listener])
    assert status == 200, f"{listener}: after {case.name}, a healthy request got {status}"
    assert wait_for(lambda: proxy.open_connections() == 0, CLOSED_WITHIN), (
        f"{listener}: {proxy.open_connections()} connection tasks left after {case.name}"
    )


@pytest.mark.parametrize("listener", LISTENERS)
def test_many_slow_clients_do_not_starve_healthy_ones(proxy: ThreadedProxy, listener: str) -> None:
    """SEC-1: 50 slowloris connections at once; healthy requests stay fast, all are reaped."""
    port = proxy.port(listener)
    socks = [connect(port) for _ in range(50)]
    try:
        for sock in socks:
            _send(sock, _HEAD)
        for _ in range(5):
            status, took = healthy_get(port, HEALTHY_PATH[listener])
            assert (status, took < HEALTHY_WITHIN) == (200, True), (
                f"{listener}: healthy request got {status} after {took:.2f}s among slow clients"
            )
        assert wait_for(lambda: proxy.open_connections() == 0, CLOSED_WITHIN * 2), (
            f"{listener}: {proxy.open_connections()} slow connections still open"
        )
    finally:
        for sock in socks:
            sock.close()


def test_an_oversized_admin_body_gets_413(proxy: ThreadedProxy) -> None:
    """SEC-1: the admin port reads at most ``max_body`` bytes of a body it never uses."""
    with connect(proxy.port("admin")) as sock:
        body = b"a" * (64 * 1024)
        head = f"POST /live HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
        _send(sock, head.encode() + body)
        response = read_until_closed(sock)
    assert status_of(response) == 413, f"expected 413, got {response[:200]!r}"


def test_admin_keep_alive_still_serves_many_requests(proxy: ThreadedProxy) -> None:
    """The limits do not break keep-alive: three requests on one connection."""
    with connect(proxy.port("admin")) as sock:
        for _ in range(3):
            sock.sendall(b"GET /live HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            while not data.endswith(b"live\n"):
                chunk = sock.recv(4096)
                assert chunk, f"the connection closed early; got {data!r}"
                data += chunk
            assert status_of(data) == 200


@pytest.mark.parametrize("listener", ["inbound", "outbound"])
def test_a_connection_to_the_proxys_own_port_is_refused_not_looped(listener: str) -> None:
    """SEC-1: an unredirected connection (original destination = the listener itself) would
    make the proxy connect to itself without end; it is refused at once."""
    asked: list[Address] = []

    def not_redirected(sock: SocketLike) -> Address:
        assert isinstance(sock, socket.socket | TransportSocket)
        host, port = sock.getsockname()[:2]
        asked.append(Address(host, port))
        return asked[-1]

    running = ThreadedProxy(destination=not_redirected)
    try:
        with connect(running.port(listener)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            response = read_until_closed(sock)
        assert response == b"", f"{listener}: expected the connection closed, got {response!r}"
        assert len(asked) == 1, f"{listener}: the proxy connected to itself: {asked}"
        status, _ = healthy_get(running.port("admin"))
        assert status == 200
    finally:
        running.close()


def test_an_admin_request_is_timed_from_its_first_byte_not_the_idle_limit() -> None:
    """SEC-1: a long keep-alive idle limit does not let a partial head linger that long."""
    config = replace(
        hostile_config(),
        admin=AdminLimits(request=0.5, idle=30.0, max_head=8 * 1024, max_body=16 * 1024),
    )
    running = ThreadedProxy(config)
    try:
        with connect(running.port("admin")) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /live HTTP/1.1\r\nHost: t\r\n")
            response = read_until_closed(sock)
            took = time.monotonic() - started
        assert status_of(response) == 408, f"expected 408, got {response[:100]!r}"
        assert took < CLOSED_WITHIN, f"a partial head was held {took:.2f}s"
    finally:
        running.close()
