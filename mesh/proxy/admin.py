"""The admin port (4191): ``/metrics``, ``/ready`` and ``/live``.

Other requests get 404 (405 for methods other than GET/HEAD). Plain HTTP/1.1
with keep-alive, on h11. Tap is not served here: it has its own port, over
mTLS, for the identities allowed to tap only (``mesh.proxy.tap_server``, SEC-2).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import h11

from mesh.proxy.connection import Conn
from mesh.proxy.telemetry import ProxyMetrics

__all__ = ["Admin"]

_TEXT = b"text/plain; charset=utf-8"
_METRICS = b"text/plain; version=0.0.4"


class Admin:
    """Serves the admin endpoints."""

    def __init__(
        self,
        metrics: ProxyMetrics,
        *,
        ready: Callable[[], bool],
    ) -> None:
        self.metrics = metrics
        self.ready = ready

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
