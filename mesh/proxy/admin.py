"""The admin port (4191): ``/metrics``, ``/ready``, ``/live`` and ``/tap``.

``/tap`` streams tap events as JSON lines (chunked) until the client goes away
or ``limit`` events were sent; query parameters ``direction``, ``authority``,
``path`` (a prefix) and ``method`` filter them. Other requests get 404 (405 for
methods other than GET/HEAD). Plain HTTP/1.1 with keep-alive, on h11.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import h11

from mesh.proxy.connection import Conn
from mesh.proxy.tap import TapHub, TapMatch
from mesh.proxy.telemetry import Direction, ProxyMetrics

__all__ = ["Admin", "tap_match"]

_TEXT = b"text/plain; charset=utf-8"
_METRICS = b"text/plain; version=0.0.4"


def tap_match(query: str) -> tuple[TapMatch, int | None]:
    """The filter and event limit asked for by a ``/tap`` query string.

    Raises ``ValueError`` for an unknown direction or a bad limit.
    """
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    direction = params.get("direction")
    limit = params.get("limit")
    if limit is not None and (not limit.isdigit() or int(limit) == 0):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    match = TapMatch(
        direction=Direction(direction.lower()) if direction else None,
        authority=params.get("authority"),
        path_prefix=params.get("path"),
        method=params.get("method"),
    )
    return match, int(limit) if limit else None


class Admin:
    """Serves the admin endpoints."""

    def __init__(
        self,
        metrics: ProxyMetrics,
        tap: TapHub,
        *,
        ready: Callable[[], bool],
        tap_capacity: int,
    ) -> None:
        self.metrics = metrics
        self.tap = tap
        self.ready = ready
        self.tap_capacity = tap_capacity

    async def handle(self, conn: Conn) -> None:
        """Serve requests on ``conn`` until it closes."""
        http = h11.Connection(h11.SERVER)
        while True:
            event = await self._next(conn, http)
            if not isinstance(event, h11.Request):
                return
            while not isinstance(await self._next(conn, http), h11.EndOfMessage):
                pass
            target = urlsplit(event.target.decode("latin-1"))
            method = event.method.decode("ascii")
            if method not in ("GET", "HEAD"):
                await self._send(conn, http, 405, b"method not allowed\n")
            elif target.path == "/tap":
                await self._tap(conn, http, target.query)
                return
            elif target.path == "/metrics":
                body = self.metrics.render().encode()
                await self._send(conn, http, 200, body, _METRICS)
            elif target.path == "/ready":
                ready = self.ready()
                await self._send(
                    conn, http, 200 if ready else 503, b"ready\n" if ready else b"not ready\n"
                )
            elif target.path == "/live":
                await self._send(conn, http, 200, b"live\n")
            else:
                await self._send(conn, http, 404, b"not found\n")
            if http.our_state is h11.MUST_CLOSE or http.their_state is not h11.DONE:
                return
            http.start_next_cycle()

    @staticmethod
    async def _next(conn: Conn, http: h11.Connection) -> object:
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError:
                return None
            if event is h11.NEED_DATA:
                try:
                    http.receive_data(await conn.read())
                except (ConnectionError, OSError):
                    return None
                continue
            return event

    @staticmethod
    async def _send(
        conn: Conn, http: h11.Connection, status: int, body: bytes, content_type: bytes = _TEXT
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        data = http.send(h11.Response(status_code=status, headers=headers)) or b""
        data += (http.send(h11.Data(body)) or b"") + (http.send(h11.EndOfMessage()) or b"")
        conn.write(data)
        await conn.drain()

    async def _tap(self, conn: Conn, http: h11.Connection, query: str) -> None:
        try:
            match, limit = tap_match(query)
        except ValueError as e:
            await self._send(conn, http, 400, f"{e}\n".encode())
            return
        wake = asyncio.Event()
        subscription = self.tap.subscribe(match, capacity=self.tap_capacity, notify=wake.set)
        gone = asyncio.ensure_future(conn.read())
        try:
            head = h11.Response(
                status_code=200, headers=[(b"content-type", b"application/x-ndjson")]
            )
            conn.write(http.send(head) or b"")
            await conn.drain()
            sent = 0
            while limit is None or sent < limit:
                waiter = asyncio.ensure_future(wake.wait())
                done, _ = await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if gone in done:
                    return
                wake.clear()
                events = subscription.drain()
                if limit is not None:
                    events = events[: limit - sent]
                sent += len(events)
                lines = "".join(e.to_line() for e in events).encode()
                if lines:
                    conn.write(http.send(h11.Data(lines)) or b"")
                    await conn.drain()
            conn.write(http.send(h11.EndOfMessage()) or b"")
            await conn.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self.tap.unsubscribe(subscription)
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await gone
