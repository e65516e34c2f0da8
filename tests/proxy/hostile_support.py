"""A proxy on its own event loop in a thread, and blocking clients that misbehave.

Hostile-input tests (SEC-1) must fail, not hang, when a listener spins: the
proxy runs on a loop of its own, and the test talks to it with blocking
sockets that have timeouts, so a stuck proxy loop shows as a timed-out
healthy request instead of a test that never ends.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, TypeVar

from mesh.proxy.admin import AdminLimits
from mesh.proxy.config import ProxyConfig
from mesh.proxy.discovery import Address
from mesh.proxy.origdst import OriginalDestination, fixed_destination
from mesh.proxy.policy import StaticPolicy
from mesh.proxy.server import Proxy
from tests.proxy.proxy_support import LOOPBACK, FakeDiscovery, Seen, loopback_config, port_of
from tests.proxy.proxy_support import start_http_app as _start_http_app

T = TypeVar("T")

CLIENT_TIMEOUT = 5.0
"""How long a blocking test client waits for any answer."""
HEALTHY_WITHIN = 2.0
"""A healthy request must be answered within this while hostile ones are in flight."""


class ThreadedProxy:
    """A plaintext ``Proxy`` (no identity) and a little HTTP app on a private loop."""

    def __init__(
        self, config: ProxyConfig | None = None, destination: OriginalDestination | None = None
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.seen = Seen()
        self.config = config or hostile_config()
        self.destination = destination
        self.proxy: Proxy | None = None
        self.app: asyncio.Server | None = None
        self.call(self._start())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CLIENT_TIMEOUT) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    async def _start(self) -> None:
        self.app = await _start_http_app(self.seen)
        target = self.destination or fixed_destination(Address(LOOPBACK, port_of(self.app)))
        self.proxy = Proxy(
            self.config,
            discovery=FakeDiscovery(),
            policy=StaticPolicy(),
            tls=None,
            inbound_destination=target,
            outbound_destination=target,
        )
        await self.proxy.start()

    async def _stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        if self.app is not None:
            self.app.close()
            await self.app.wait_closed()

    def port(self, listener: str) -> int:
        assert self.proxy is not None
        return self.proxy.port(listener)

    def open_connections(self) -> int:
        assert self.proxy is not None
        return len(self.proxy._connections)

    def close(self) -> None:
        try:
            self.call(self._stop(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()


def hostile_config(**timeouts: float) -> ProxyConfig:
    """Loopback listeners with short request/idle limits so slow clients show quickly."""
    values: dict[str, float] = {"request_head": 0.5, "http_idle": 1.0, "detect": 0.5}
    values.update(timeouts)
    config = loopback_config(**values)
    return replace(
        config, admin=AdminLimits(request=0.5, idle=1.0, max_head=8 * 1024, max_body=16 * 1024)
    )


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=CLIENT_TIMEOUT)
    sock.settimeout(CLIENT_TIMEOUT)
    return sock


def read_until_closed(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything the server sends until it closes; raises ``TimeoutError`` if it never does."""
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def healthy_get(
    port: int, path: str = "/live", timeout: float = HEALTHY_WITHIN
) -> tuple[int, float]:
    """One well-formed GET on a fresh connection: (status, seconds it took)."""
    started = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        request = f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        response = read_until_closed(sock)
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - started


def status_of(response: bytes) -> int | None:
    """The status code of the first response in ``response`` (``None``: no response)."""
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
