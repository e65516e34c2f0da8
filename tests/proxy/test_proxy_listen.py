"""Listener address families: wildcard and loopback listeners serve IPv4 and IPv6 alike.

proxy-init redirects IPv6 (``ip6tables``) to ``[::]:4143`` and ``[::1]:4140``;
a proxy bound on IPv4 only would drop that traffic. Real sockets on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mesh.proxy import listen as listen_module
from mesh.proxy.listen import dual_stack_twin, listen
from mesh.proxy.policy import StaticPolicy
from mesh.proxy.server import LISTENERS, Proxy
from tests.proxy.proxy_support import FakeDiscovery, loopback_config


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


@pytest.mark.parametrize(
    ("host", "twin"),
    [
        ("0.0.0.0", "::"),
        ("::", "0.0.0.0"),
        ("[::]", "0.0.0.0"),
        ("127.0.0.1", "::1"),
        ("::1", "127.0.0.1"),
        ("10.42.0.7", None),
        ("fd00::7", None),
    ],
)
def test_wildcard_and_loopback_addresses_have_a_twin_in_the_other_family(
    host: str, twin: str | None
) -> None:
    assert dual_stack_twin(host) == twin


class _Hello(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"hello")
        transport.close()


async def _greeting(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def _listening(host: str, port: int = 0) -> AsyncIterator[listen_module.Listener]:
    listener = await listen(_spawn, host, port)
    try:
        yield listener
    finally:
        listener.close()
        await listener.wait_closed()


_spawn = _Hello


@needs_ipv6
async def test_a_loopback_listener_answers_on_both_families_on_one_port() -> None:
    async with _listening("127.0.0.1") as listener:
        ports = {int(s.getsockname()[1]) for s in listener.sockets}
        assert len(ports) == 1, f"both families must share the port, got {ports}"
        port = ports.pop()
        assert listener.hosts == ("127.0.0.1", "::1")
        assert await _greeting("127.0.0.1", port) == b"hello"
        assert await _greeting("::1", port) == b"hello"


@needs_ipv6
async def test_a_twin_whose_port_is_taken_fails_the_start_and_closes_the_first() -> None:
    with socket.socket(socket.AF_INET6) as squatter:
        squatter.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        squatter.bind(("::1", 0))
        squatter.listen()
        port = int(squatter.getsockname()[1])
        with pytest.raises(OSError, match=r"binding \[::1\]:\d+ beside 127.0.0.1"):
            await listen(_spawn, "127.0.0.1", port)
    # the IPv4 socket bound first was released: the port can be bound again
    with socket.socket(socket.AF_INET) as again:
        again.bind(("127.0.0.1", port))


async def test_without_ipv6_the_listener_serves_its_own_family(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = listen_module.create_server

    async def no_ipv6(
        cb: Any,
        host: str,
        port: int,
    ) -> asyncio.Server:
        if ":" in host:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return await real(cb, host, port)

    monkeypatch.setattr(listen_module, "create_server", no_ipv6)
    async with _listening("127.0.0.1") as listener:
        assert listener.hosts == ("127.0.0.1",)
        port = int(listener.sockets[0].getsockname()[1])
        assert await _greeting("127.0.0.1", port) == b"hello"


@needs_ipv6
async def test_a_proxy_serves_every_listener_over_ipv6_too() -> None:
    """IPv6 redirected by proxy-init reaches the proxy instead of a closed port."""
    proxy = Proxy(loopback_config(), discovery=FakeDiscovery(), policy=StaticPolicy(), tls=None)
    async with proxy:
        for name in LISTENERS:
            families = {s.family for s in proxy._servers[name].sockets}
            assert families == {socket.AF_INET, socket.AF_INET6}, f"{name}: {families}"
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(f"http://[::1]:{proxy.admin_port}/live")
    assert answer.status_code == 200, answer.text


@needs_ipv6
async def test_an_ephemeral_listener_whose_twin_port_is_taken_tries_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = listen_module.create_server
    refused: list[int] = []

    async def taken_once(
        cb: Any,
        host: str,
        port: int,
    ) -> asyncio.Server:
        if ":" in host and not refused:
            refused.append(port)
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return await real(cb, host, port)

    monkeypatch.setattr(listen_module, "create_server", taken_once)
    async with _listening("127.0.0.1") as listener:
        ports = {int(s.getsockname()[1]) for s in listener.sockets}
        assert listener.hosts == ("127.0.0.1", "::1")
        assert len(ports) == 1, ports
    assert refused, "the twin was never refused: the test proves nothing"
    with socket.socket(socket.AF_INET) as again:  # the first attempt's socket was released
        again.bind(("127.0.0.1", refused[0]))


async def test_a_fixed_port_whose_twin_is_taken_is_not_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = listen_module.create_server

    async def taken(
        cb: Any,
        host: str,
        port: int,
    ) -> asyncio.Server:
        if ":" in host:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return await real(cb, host, port)

    monkeypatch.setattr(listen_module, "create_server", taken)
    with socket.socket(socket.AF_INET) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with pytest.raises(OSError, match=rf"binding \[::1\]:{port} beside 127.0.0.1"):
        await listen(_spawn, "127.0.0.1", port)
