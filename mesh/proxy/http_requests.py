"""Reading whole requests and sending small answers on h11, for the proxy's own ports.

The admin port (4191) and the tap port (4190) serve the proxy's own endpoints,
not application traffic; both read requests with ``read_request`` and answer
with ``send``/``refuse``. Rules (SEC-1: hostile input costs only its own
connection, with bounded memory and time):

- a request head larger than ``RequestLimits.max_head`` is refused with 431
  (h11's hint) and the connection closes; a body beyond ``max_body`` gets 413;
- a malformed, truncated or badly chunked request is refused with h11's status
  hint (400 mostly); a peer that goes away ends the connection without an
  answer (never a loop that stops reading);
- a connection may idle ``idle`` seconds before a request starts; from the
  request's first byte the whole request (head and body) must arrive within
  ``request`` seconds, else 408 and close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import h11

from mesh.proxy.connection import Conn

__all__ = [
    "TEXT",
    "Closed",
    "Refuse",
    "RequestLimits",
    "new_connection",
    "read_request",
    "refuse",
    "send",
]

TEXT = b"text/plain; charset=utf-8"


@dataclass(frozen=True)
class RequestLimits:
    """What one connection to a proxy's own port may cost (seconds and bytes)."""

    request: float = 10.0
    """A request (head and body) must arrive in full within this, once started."""
    idle: float = 30.0
    """A keep-alive connection with no request in progress is closed after this
    (Prometheus scrapes every 10 s, so its connections stay open)."""
    max_head: int = 16 * 1024
    """The largest request head (request line and headers)."""
    max_body: int = 64 * 1024
    """The largest request body read (and discarded); the endpoints take none."""


class Refuse(Exception):
    """The request cannot be served: answer ``status`` (if possible) and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Closed(Exception):
    """The peer went away or stopped sending in time: close without answering."""


def new_connection(limits: RequestLimits) -> h11.Connection:
    """A server-side h11 connection whose incomplete head may not exceed ``limits.max_head``."""
    return h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)


async def read_request(
    conn: Conn, http: h11.Connection, limits: RequestLimits
) -> h11.Request | None:
    """The next complete request (its body read and dropped); ``None``: the peer is done.

    Raises ``Refuse`` for a request to answer with an error, ``Closed`` for a
    peer that broke off or idled too long (see the module docstring).
    """
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
                event = await _next(conn, http, started)
                if request is None:
                    if isinstance(event, h11.ConnectionClosed):
                        return None
                    if not isinstance(event, h11.Request):
                        raise Closed(f"unexpected {type(event).__name__}")
                    request = event
                elif isinstance(event, h11.EndOfMessage):
                    return request
                elif isinstance(event, h11.Data):
                    body += len(event.data)
                    if body > limits.max_body:
                        raise Refuse(413, "request body too large")
                else:
                    raise Closed(f"request ended early: {type(event).__name__}")
    except TimeoutError:
        if started_at is None:
            raise Closed("idle") from None
        raise Refuse(408, "request timed out") from None


async def _next(conn: Conn, http: h11.Connection, received: Callable[[], None]) -> object:
    """The next h11 event; reads as needed (calling ``received`` on bytes).

    Raises ``Refuse`` for a malformed request, ``Closed`` when the peer went
    away (any event after that would be ``ConnectionClosed`` again).
    """
    while True:
        try:
            event = http.next_event()
        except h11.RemoteProtocolError as e:
            raise Refuse(e.error_status_hint, str(e) or "bad request") from None
        if event is h11.NEED_DATA:
            try:
                data = await conn.read()
            except (ConnectionError, OSError) as e:
                raise Closed(str(e)) from None
            if data:
                received()
            http.receive_data(data)
            continue
        if event is h11.PAUSED:
            raise Closed("paused")
        return event


async def send(
    conn: Conn,
    http: h11.Connection,
    status: int,
    body: bytes,
    content_type: bytes = TEXT,
    *,
    close: bool = False,
) -> None:
    """Answer ``status`` with a whole ``body`` (``close``: and ask to close the connection)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    data = http.send(h11.Response(status_code=status, headers=headers)) or b""
    data += (http.send(h11.Data(body)) or b"") + (http.send(h11.EndOfMessage()) or b"")
    conn.write(data)
    await conn.drain()


async def refuse(conn: Conn, http: h11.Connection, refusal: Refuse) -> None:
    """Answer ``refusal`` and close, if an answer can still be sent; errors are swallowed."""
    if http.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = f"{refusal}\n".encode()
    with contextlib.suppress(h11.LocalProtocolError, ConnectionError, OSError):
        await send(conn, http, refusal.status, body, close=True)
