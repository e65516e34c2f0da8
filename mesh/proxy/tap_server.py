"""Tap on its own port (4190): mTLS only, and only for the identities allowed to tap (SEC-2).

As Linkerd's proxy serves its tap API on the control port to the identity named
by ``LINKERD2_PROXY_TAP_SVC_NAME`` (viz's tap service), this proxy serves tap on
``LINKERD2_PROXY_CONTROL_LISTEN_ADDR`` to the identities named there
(comma-separated). Rules:
- Served only with identity and at least one allowed name; otherwise the port is
  not bound at all (the admin port never serves tap).
- Every connection starts with a TLS handshake under the proxy's current
  certificate, within ``handshake`` seconds. A client that presents no
  certificate, one that does not chain to the trust anchors, or one whose identity
  is not allowed gets the connection closed right after the handshake: not one
  byte of HTTP, so an unauthenticated request learns nothing.
- Then one HTTP/1.1 request, read under ``RequestLimits`` as the admin port reads
  them (``mesh.proxy.http_requests``: it must arrive in full within ``request``
  seconds, else 408; an oversized or malformed one gets its error status; each
  then closes). ``GET /tap?direction=&authority=&path=&method=&limit=`` streams
  the events of ``mesh.proxy.tap`` as JSON lines (chunked), shaped like
  ``linkerd viz tap -o json``, until the client goes away or ``limit`` events were
  sent; bad parameters get 400, other paths 404, other methods 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs, urlsplit

import h11

from mesh.proxy.connection import Conn
from mesh.proxy.http_requests import (
    Closed,
    Refuse,
    RequestLimits,
    new_connection,
    read_request,
    refuse,
    send,
)
from mesh.proxy.tap import TapHub, TapMatch
from mesh.proxy.telemetry import Direction
from mesh.proxy.tls import HandshakeError, TlsSession, TlsStore

__all__ = ["TapServer", "tap_match"]

log = logging.getLogger(__name__)


def tap_match(query: str) -> tuple[TapMatch, int | None]:
    """The filter and event limit asked for by a ``/tap`` query string.

    Raises ``ValueError`` for an unknown direction or a bad limit.
    """
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    direction = params.get("direction")
    limit = params.get("limit")
    if limit is not None and (not limit.isdigit() or int(limit) == 0):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    try:
        chosen = Direction(direction.lower()) if direction else None
    except ValueError:
        raise ValueError(f"direction must be inbound or outbound, got {direction!r}") from None
    match = TapMatch(
        direction=chosen,
        authority=params.get("authority"),
        path_prefix=params.get("path"),
        method=params.get("method"),
    )
    return match, int(limit) if limit else None


class TapServer:
    """Serves tap to authenticated, allowed clients (see the module docstring)."""

    def __init__(
        self,
        tap: TapHub,
        tls: TlsStore,
        allowed: frozenset[str],
        *,
        capacity: int,
        handshake: float,
        limits: RequestLimits | None = None,
    ) -> None:
        if not allowed:
            raise ValueError("tap needs at least one identity allowed to tap")
        self.tap = tap
        self.tls = tls
        self.allowed = allowed
        self.capacity = capacity
        self.handshake = handshake
        self.limits = limits or RequestLimits()
        self.refused = 0
        """Connections closed after the handshake (no or a disallowed identity, or none)."""

    async def handle(self, conn: Conn) -> None:
        """Authenticate ``conn``, then serve one tap request on it."""
        session = TlsSession(self.tls.server, server_side=True)
        try:
            async with asyncio.timeout(self.handshake):
                await conn.start_tls(session, self.tls.anchors)
        except (HandshakeError, TimeoutError, ConnectionError, OSError) as e:
            self.refused += 1
            log.info("tap from %s refused: %s", conn.peer, e)
            return
        if session.peer is None or session.peer not in self.allowed:
            self.refused += 1
            log.info("tap from %s refused: identity %s may not tap", conn.peer, session.peer)
            return
        await self._request(conn)

    async def _request(self, conn: Conn) -> None:
        http = new_connection(self.limits)
        try:
            event = await read_request(conn, http, self.limits)
        except Refuse as e:
            await refuse(conn, http, e)
            return
        except Closed:
            return
        if event is None:
            return
        target = urlsplit(event.target.decode("latin-1"))
        if event.method != b"GET":
            await send(conn, http, 405, b"method not allowed\n")
        elif target.path != "/tap":
            await send(conn, http, 404, b"not found\n")
        else:
            await self._stream(conn, http, target.query)

    async def _stream(self, conn: Conn, http: h11.Connection, query: str) -> None:
        try:
            match, limit = tap_match(query)
        except ValueError as e:
            await send(conn, http, 400, f"{e}\n".encode())
            return
        wake = asyncio.Event()
        subscription = self.tap.subscribe(match, capacity=self.capacity, notify=wake.set)
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
