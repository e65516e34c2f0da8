"""A controller's plain-HTTP admin port: ``/metrics``, ``/ready`` and ``/live``.

Rules: ``/metrics`` serves the controller's own registry (Prometheus text); ``/ready``
is 200 while ``ready()`` says so, 503 before; ``/live`` is 200 while the process serves.
A hostile client costs only its own connection (SEC-1): a connection that has not sent
a complete request head within ``keepalive`` seconds, or idles that long between
requests, is closed.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ADMIN_KEEPALIVE", "AdminServer"]

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
