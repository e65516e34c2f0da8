"""The mirror controller's admin port (9999): ``/metrics``, ``/ready`` and ``/live``.

Rules: metrics live in one registry per controller (tests run several side by side);
``gateway_alive{target_cluster_name}`` is 1 or 0 once the gateway has been probed, and
``gateway_probe_latency_ms{target_cluster_name}`` observes every successful probe
(CONF-11). ``/ready`` is 200 once the controller has listed the local cluster, 503 before;
``/live`` is 200 while the process serves.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["AdminServer", "MirrorMetrics"]

LATENCY_BUCKETS_MS = (
    1,
    2,
    3,
    4,
    5,
    10,
    20,
    30,
    40,
    50,
    100,
    200,
    300,
    400,
    500,
    1000,
    2000,
    5000,
    10000,
    30000,
)


class MirrorMetrics:
    """The controller's Prometheus metrics."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.registry = CollectorRegistry()
        self.gateway_alive = Gauge(
            "gateway_alive",
            "1 if the target's gateway answers its probe, 0 after failureThreshold failures",
            ["target_cluster_name"],
            registry=self.registry,
        )
        self.probe_latency = Histogram(
            "gateway_probe_latency_ms",
            "Latency of successful gateway probes, in milliseconds",
            ["target_cluster_name"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.writes = Counter(
            "service_mirror_writes",
            "Writes to the local cluster by kind and outcome",
            ["target_cluster_name", "kind", "outcome"],
            registry=self.registry,
        )

    def gateway(self, alive: bool, latency_ms: float | None) -> None:
        self.gateway_alive.labels(self.cluster).set(1 if alive else 0)
        if latency_ms is not None:
            self.probe_latency.labels(self.cluster).observe(latency_ms)

    def wrote(self, kind: str, ok: bool) -> None:
        self.writes.labels(self.cluster, kind, "ok" if ok else "error").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class AdminServer:
    """An aiohttp server for the admin endpoints."""

    def __init__(self, metrics: MirrorMetrics, ready: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _metrics_handler(self, _: web.Request) -> web.Response:
        body = self._metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

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
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
