"""The admin port (4191): ``/metrics``, ``/ready`` and ``/live``.

Other requests get 404 (405 for methods other than GET/HEAD). Plain HTTP/1.1
with keep-alive, on h11. Tap is not served here: it has its own port, over
mTLS, for the identities allowed to tap only (``mesh.proxy.tap_server``, SEC-2).

Hostile input costs only its own connection (SEC-1): a request head larger than
``AdminLimits.max_head`` gets 431 (h11's hint) and the connection closes; a
request body beyond ``max_body`` gets 413 and closes; a malformed, truncated or
badly chunked request, or a peer that goes away, ends the connection (never a
loop that stops reading); a whole request must arrive within ``request``
seconds and an idle keep-alive connection is closed after ``idle`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from mesh.proxy.connection import Conn
from mesh.proxy.telemetry import ProxyMetrics

__all__ = ["Admin", "AdminLimits"]

_TEXT = b"text/plain; charset=utf-8"
_METRICS = b"text/plain; version=0.0.4"


@dataclass(frozen=True)
class AdminLimits:
    """What one admin connection may cost (seconds and bytes)."""

    request: float = 10.0
    """A request (head and body) must arrive in full within this, once started."""
    idle: float = 30.0
    """A keep-alive connection with no request in progress is closed after this
    (Prometheus scrapes every 10 s, so its connections stay open)."""
    max_head: int = 16 * 1024
    """The largest request head (request line and headers)."""
    max_body: int = 64 * 1024
    """The largest request body read (and discarded); the endpoints take none."""


class _Refuse(Exception):
    """The request cannot be served: answer ``status`` (if possible) and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Closed(Exception):
    """The peer went away or stopped sending in time: close without answering."""


class Admin:
    """Serves the admin endpoints."""

    def __init__(
        self,
        metrics: ProxyMetrics,
        *,
        ready: Callable[[], bool],
        limits: AdminLimits | None = None,
    ) -> None:
        self.metrics = metrics
        self.ready = ready
        self.limits = limits or AdminLimits()

    async def handle(self, conn: Conn) -> None:
        """Serve requests on ``conn`` until it closes (or misbehaves)."""
        limits = self.limits
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)
        while True:
            try:
                event = await self._request(conn, http)
            except _Refuse as e:
                await self._refuse(conn, http, e)
                return
            except _Closed:
                return
            if event is None:
                return
            target = urlsplit(event.target.decode("latin-1"))
            method = event.method.decode("ascii", "replace")
            if method not in ("GET", "HEAD"):
                await self._send(conn, http, 405, b"method not allowed\n")
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

    async def _request(self, conn: Conn, http: h11.Connection) -> h11.Request | None:
        """The next complete request (its body read and dropped); ``None``: the peer is done.

        The connection may idle ``limits.idle`` before a request; from its first
        byte, the whole request must arrive within ``limits.request``. Raises
        ``_Refuse`` for a request to answer with an error, ``_Closed`` for a peer
        that broke off or idled too long.
        """
        limits = self.limits
        loop = asyncio.get_running_loop()
        request: h11.Request | None = None
        body = 0
        started_at: float | None = None
        try:
            async with asyncio.timeout(limits.idle) as deadline:

                def started() -> None:
                    nonlocal started_at
                    if started_at is None:
                        started_at = loop.time()
                        deadline.reschedule(started_at + limits.request)

                if http.trailing_data[0]:
                    started()
                while True:
                    event = await self._next(conn, http, started)
                    if request is None:
                        if isinstance(event, h11.ConnectionClosed):
                            return None
                        if not isinstance(event, h11.Request):
                            raise _Closed(f"unexpected {type(event).__name__}")
                        request = event
                    elif isinstance(event, h11.EndOfMessage):
                        return request
                    elif isinstance(event, h11.Data):
                        body += len(event.data)
                        if body > limits.max_body:
                            raise _Refuse(413, "request body too large")
                    else:
                        raise _Closed(f"request ended early: {type(event).__name__}")
        except TimeoutError:
            if started_at is None:
                raise _Closed("idle") from None
            raise _Refuse(408, "request timed out") from None

    @staticmethod
    async def _next(conn: Conn, http: h11.Connection, received: Callable[[], None]) -> object:
        """The next h11 event; reads as needed (calling ``received`` on bytes).

        Raises ``_Refuse`` for a malformed request, ``_Closed`` when the peer
        went away (any event after that would be ``ConnectionClosed`` again).
        """
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as e:
                raise _Refuse(e.error_status_hint, str(e) or "bad request") from None
            if event is h11.NEED_DATA:
                try:
                    data = await conn.read()
                except (ConnectionError, OSError) as e:
                    raise _Closed(str(e)) from None
                if data:
                    received()
                http.receive_data(data)
                continue
            if event is h11.PAUSED:
                raise _Closed("paused")
            return event

    @classmethod
    async def _refuse(cls, conn: Conn, http: h11.Connection, refusal: _Refuse) -> None:
        if http.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{refusal}\n".encode()
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError, OSError):
            await cls._send(conn, http, refusal.status, body, close=True)

    @staticmethod
    async def _send(
        conn: Conn,
        http: h11.Connection,
        status: int,
        body: bytes,
        content_type: bytes = _TEXT,
        *,
        close: bool = False,
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        data = http.send(h11.Response(status_code=status, headers=headers)) or b""
        data += (http.send(h11.Data(body)) or b"") + (http.send(h11.EndOfMessage()) or b"")
        conn.write(data)
        await conn.drain()
