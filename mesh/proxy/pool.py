"""Idle upstream HTTP/1.1 connections kept for reuse, per endpoint and TLS identity.

A connection is reused only if the exchange on it ended cleanly (both sides
done, no ``Connection: close``), it has not been idle longer than the idle
timeout, and its peer has neither closed it nor sent anything meanwhile.
Connections are opened by an injected ``Connector`` so the pool does not know
about TLS or metrics.

At most ``max_connecting`` connections to one key are being opened at once
(a TLS handshake costs far more than a request): a request beyond that waits
for a connection released by another request, or for a connect slot, but never
longer than ``connect_wait``, after which it opens its own. So a burst of new
clients does not turn into a storm of handshakes that starves the requests
already flowing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mesh.proxy.connection import Conn
from mesh.proxy.discovery import Address
from mesh.proxy.http1 import UpstreamConnection

__all__ = [
    "DEFAULT_CONNECT_WAIT",
    "DEFAULT_MAX_CONNECTING",
    "ConnectionPool",
    "Connector",
    "PoolKey",
    "PooledConnection",
]


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Which connections are interchangeable: same endpoint, same expected identity."""

    address: Address
    identity: str | None = None
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # looked up twice per request: hash once (the generated hash is Python code)
        object.__setattr__(
            self, "_hash", hash((self.address.host, self.address.port, self.identity))
        )

    def __hash__(self) -> int:
        return self._hash


class PooledConnection:
    """An upstream connection with its HTTP/1.1 client state."""

    __slots__ = ("conn", "http", "idle_since", "key", "uses")

    def __init__(self, key: PoolKey, conn: Conn) -> None:
        self.key = key
        self.conn = conn
        self.http = UpstreamConnection(str(key.address), key=self)
        self.idle_since = 0.0
        self.uses = 0


Connector = Callable[[PoolKey], Awaitable[Conn]]

DEFAULT_MAX_CONNECTING = 8
"""Connections to one key opened at once (see the module docstring)."""
DEFAULT_CONNECT_WAIT = 1.0
"""Seconds a request waits for a connection or a connect slot before opening its own."""


class ConnectionPool:
    """Hands out connections per ``PoolKey``, reusing idle ones."""

    def __init__(
        self,
        connector: Connector,
        *,
        clock: Callable[[], float],
        idle_timeout: float,
        max_idle: int,
        max_connecting: int = DEFAULT_MAX_CONNECTING,
        connect_wait: float = DEFAULT_CONNECT_WAIT,
    ) -> None:
        if max_connecting < 1:
            raise ValueError(f"max_connecting must be at least 1, not {max_connecting}")
        self._connector = connector
        self._max_connecting = max_connecting
        self._connect_wait = connect_wait
        self._connecting: dict[PoolKey, int] = {}
        self._waiters: dict[PoolKey, deque[asyncio.Future[PooledConnection | None]]] = {}
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle
        self._idle: dict[PoolKey, deque[PooledConnection]] = {}
        self._swept = clock()
        self._closed = False
        self.opened = 0
        """Connections opened so far (for tests and debugging)."""

    def acquire_idle(self, key: PoolKey) -> PooledConnection | None:
        """An idle connection for ``key`` if there is one (no waiting, no connecting)."""
        if self._closed:
            return None
        now = self._clock()
        self._sweep(now)
        idle = self._idle.get(key)
        while idle:
            pooled = idle.pop()
            if self._usable(pooled, now):
                pooled.uses += 1
                return pooled
            pooled.conn.close()
        return None

    async def acquire(self, key: PoolKey) -> PooledConnection:
        """An idle connection for ``key``, or a new one (raises what the connector raises)."""
        if self._closed:
            raise ConnectionError("the connection pool is closed")
        pooled = self.acquire_idle(key)
        if pooled is not None:
            return pooled
        if self._connecting.get(key, 0) >= self._max_connecting:
            handed = await self._wait(key)
            if handed is not None:
                return handed
            if self._closed:
                raise ConnectionError("the connection pool is closed")
            pooled = self.acquire_idle(key)
            if pooled is not None:
                return pooled
        self._connecting[key] = self._connecting.get(key, 0) + 1
        try:
            conn = await self._connector(key)
        finally:
            left = self._connecting[key] - 1
            if left:
                self._connecting[key] = left
            else:
                del self._connecting[key]
            self._hand(key, None)  # a connect slot is free: the longest waiter takes it
        self.opened += 1
        pooled = PooledConnection(key, conn)
        pooled.uses = 1
        return pooled

    async def _wait(self, key: PoolKey) -> PooledConnection | None:
        """A connection another request released, or ``None``: go and connect."""
        waiter: asyncio.Future[PooledConnection | None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(key, deque())
        waiters.append(waiter)
        try:
            async with asyncio.timeout(self._connect_wait):
                return await waiter
        except TimeoutError:
            return None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()
                if handed is not None:  # handed over as the request went away: pass it on
                    self.release(handed, reusable=True)
                else:
                    self._hand(key, None)
            raise
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters and self._waiters.get(key) is waiters:
                del self._waiters[key]

    def _hand(self, key: PoolKey, pooled: PooledConnection | None) -> bool:
        """Give ``pooled`` (or a connect slot: ``None``) to the longest waiter, if any."""
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(pooled)
                return True
        return False

    def release(self, pooled: PooledConnection, reusable: bool) -> None:
        """Return ``pooled`` after an exchange; it is closed unless ``reusable``."""
        now = self._clock()
        if not (reusable and not self._closed and pooled.http.reusable):
            pooled.conn.close()
            return
        if not self._alive(pooled):
            pooled.conn.close()
            return
        if pooled.key in self._waiters and self._hand(pooled.key, pooled):
            pooled.uses += 1
            return
        idle = self._idle.setdefault(pooled.key, deque())
        if len(idle) >= self._max_idle:
            pooled.conn.close()
            return
        pooled.idle_since = now
        idle.append(pooled)

    def idle_count(self, key: PoolKey | None = None) -> int:
        """Idle connections (for ``key``, or in all)."""
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(d) for d in self._idle.values())

    @staticmethod
    def _alive(pooled: PooledConnection) -> bool:
        conn = pooled.conn
        return not (conn.closing or conn.at_eof or conn.buffered)

    def _usable(self, pooled: PooledConnection, now: float) -> bool:
        return self._alive(pooled) and now - pooled.idle_since < self._idle_timeout

    def _sweep(self, now: float) -> None:
        if now - self._swept < self._idle_timeout:
            return
        self._swept = now
        for key, idle in list(self._idle.items()):
            keep = deque(p for p in idle if self._usable(p, now))
            for pooled in idle:
                if pooled not in keep:
                    pooled.conn.close()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    async def close(self) -> None:
        """Close every idle connection; later releases close theirs; waiters connect."""
        self._closed = True
        for key in list(self._waiters):
            while self._hand(key, None):
                pass
        idle = [p for d in self._idle.values() for p in d]
        self._idle.clear()
        await asyncio.gather(*(p.conn.aclose() for p in idle))
