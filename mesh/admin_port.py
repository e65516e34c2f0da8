"""A controller's plain-HTTP admin port (``/metrics``, ``/ready``, ``/live``) and its run.

Rules: ``/metrics`` serves the controller's own registry (Prometheus text); ``/ready``
is 200 while ``ready()`` says so, 503 before; ``/live`` is 200 while the process serves.
A hostile client costs only its own connection (SEC-1): a connection that has not sent
a complete request head within ``keepalive`` seconds, or idles that long between
requests, is closed. ``serve_until_stopped`` runs a controller beside its admin port
until SIGTERM/SIGINT or the controller's own end, then stops both and closes its client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mesh.serving import failure, until_stopped

__all__ = [
    "ADMIN_KEEPALIVE",
    "AdminServer",
    "configure_logging",
    "parse_host_port",
    "serve_until_stopped",
]

ADMIN_KEEPALIVE = 10.0
"""Seconds a connection may stay without a request (silent or slowloris clients)."""


class AdminServer:
    """An aiohttp server for a controller's admin endpoints."""

    def __init__(
        self,
        exposition: Callable[[], bytes],
        ready: Callable[[], bool],
        keepalive: float = ADMIN_KEEPALIVE,
    ) -> None:
        self._exposition = exposition
        self._ready = ready
        self._keepalive = keepalive
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _metrics_handler(self, _: web.Request) -> web.Response:
        return web.Response(body=self._exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _ready_handler(self, _: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not synced\n")

    async def _live_handler(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def start(self, host: str, port: int) -> int:
        """Serve on ``host:port`` (0 picks a port); the bound port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_handler)
        app.router.add_get("/ready", self._ready_handler)
        app.router.add_get("/live", self._live_handler)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self._keepalive,
            lingering_time=self._keepalive,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def parse_host_port(text: str, what: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; an empty host is ``0.0.0.0``); ``SystemExit`` naming
    ``what`` (the component and its flag) when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SystemExit(f"{what} {text!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def configure_logging(level: str) -> None:
    """A controller's log format; the HTTP clients' one line per request is silenced."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def serve_until_stopped(
    component: str,
    run: Awaitable[None],
    admin: AdminServer,
    close: Callable[[], Awaitable[None]],
) -> None:
    """Run ``run`` until a stop signal or its own end; stop ``admin``, then ``close()``.

    A controller that ended with an error exits with ``SystemExit`` naming ``component``.
    """
    running = asyncio.ensure_future(run)
    try:
        await until_stopped(running)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await admin.stop()
        await close()
    error = failure(running)
    if error is not None:
        raise SystemExit(f"{component}: {error}")
