"""Idle upstream HTTP/1.1 connections kept for reuse, per endpoint and TLS identity.

A connection is reused only if the exchange on it ended cleanly (both sides
done, no ``Connection: close``), it has not been idle longer than the idle
timeout, and its peer has neither closed it nor sent anything meanwhile. Connections are opened by
an injected ``Connector`` so the pool does not know about TLS or metrics.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mesh.proxy.connection import Conn
from mesh.proxy.discovery import Address
from mesh.proxy.http1 import UpstreamConnection

__all__ = ["ConnectionPool", "Connector", "PoolKey", "PooledConnection"]


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


class ConnectionPool:
    """Hands out connections per ``PoolKey``, reusing idle ones."""

    def __init__(
        self,
        connector: Connector,
        *,
        clock: Callable[[], float],
        idle_timeout: float,
        max_idle: int,
    ) -> None:
        self._connector = connector
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
        conn = await self._connector(key)
        self.opened += 1
        pooled = PooledConnection(key, conn)
        pooled.uses = 1
        return pooled

    def release(self, pooled: PooledConnection, reusable: bool) -> None:
        """Return ``pooled`` after an exchange; it is closed unless ``reusable``."""
        now = self._clock()
        if not (reusable and not self._closed and pooled.http.reusable):
            pooled.conn.close()
            return
        idle = self._idle.setdefault(pooled.key, deque())
        if len(idle) >= self._max_idle or not self._alive(pooled):
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
        """Close every idle connection; later releases close theirs."""
        self._closed = True
        idle = [p for d in self._idle.values() for p in d]
        self._idle.clear()
        await asyncio.gather(*(p.conn.aclose() for p in idle))
