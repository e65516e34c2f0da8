"""The mirror controller's admin port (9999): ``/metrics``, ``/ready`` and ``/live``.

Rules: metrics live in one registry per controller (tests run several side by side);
``gateway_alive{target_cluster_name}`` is 1 or 0 once the gateway has been probed, and
``gateway_probe_latency_ms{target_cluster_name}`` observes every successful probe
(CONF-11). ``/ready`` is 200 once the controller has listed the local cluster, 503 before;
``/live`` is 200 while the process serves.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

__all__ = ["MirrorMetrics"]

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
