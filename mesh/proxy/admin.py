"""The admin port (4191): ``/metrics``, ``/ready`` and ``/live``.

Other requests get 404 (405 for methods other than GET/HEAD). Plain HTTP/1.1
with keep-alive, on h11. Tap is not served here: it has its own port, over
mTLS, for the identities allowed to tap only (``mesh.proxy.tap_server``, SEC-2).

Hostile input costs only its own connection (SEC-1): requests are read with
``mesh.proxy.http_requests`` under ``AdminLimits`` (a head beyond ``max_head``
gets 431, a body beyond ``max_body`` 413, a malformed or truncated request its
error status, a request slower than ``request`` seconds 408, each then closed;
a peer that goes away, or idles ``idle`` seconds, is closed).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

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
from mesh.proxy.telemetry import ProxyMetrics

__all__ = ["Admin", "AdminLimits"]

_METRICS = b"text/plain; version=0.0.4"

AdminLimits = RequestLimits
"""What one admin connection may cost (seconds and bytes)."""


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
        http = new_connection(self.limits)
        while True:
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
            method = event.method.decode("ascii", "replace")
            if method not in ("GET", "HEAD"):
                await send(conn, http, 405, b"method not allowed\n")
            elif target.path == "/metrics":
                await send(conn, http, 200, self.metrics.render().encode(), _METRICS)
            elif target.path == "/ready":
                ready = self.ready()
                await send(
                    conn, http, 200 if ready else 503, b"ready\n" if ready else b"not ready\n"
                )
            elif target.path == "/live":
                await send(conn, http, 200, b"live\n")
            else:
                await send(conn, http, 404, b"not found\n")
            if http.our_state is h11.MUST_CLOSE or http.their_state is not h11.DONE:
                return
            http.start_next_cycle()
