"""``multicluster gateways``: each link's gateway state from its mirror controller's metrics.

Pure: ``probe_state`` reads the Prometheus text a controller serves on
``/metrics`` (gauge ``gateway_alive`` and histogram ``gateway_probe_latency_ms``,
both labelled ``target_cluster_name``); ``GatewayRow`` is one line of the table
``render_table`` prints as ``CLUSTER ALIVE NUM_SVC LATENCY`` (Linkerd's
columns). LATENCY is the probe latency's median over the controller's life,
``-`` when the gateway is not alive or never answered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "ALIVE_METRIC",
    "LATENCY_METRIC",
    "GatewayRow",
    "ProbeState",
    "histogram_quantile",
    "probe_state",
    "render_table",
]

ALIVE_METRIC = "gateway_alive"
LATENCY_METRIC = "gateway_probe_latency_ms"
_LABEL = "target_cluster_name"
HEADER = ("CLUSTER", "ALIVE", "NUM_SVC", "LATENCY")


@dataclass(frozen=True)
class ProbeState:
    alive: bool
    latency_p50_ms: float | None
    """``None`` when no probe has answered."""


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as Prometheus does it.

    Linear interpolation inside the bucket holding the rank; the ``+Inf``
    bucket answers with the highest finite bound. ``None`` with no observations.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def probe_state(metrics_text: str, cluster: str) -> ProbeState | None:
    """What the metrics say of ``cluster``'s gateway; ``None`` if they say nothing of it.

    Raises ``ValueError`` if the text is not Prometheus exposition format.
    """
    alive: bool | None = None
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get(_LABEL) != cluster:
                continue
            if sample.name == ALIVE_METRIC:
                alive = sample.value >= 1
            elif sample.name == f"{LATENCY_METRIC}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    if alive is None:
        return None
    return ProbeState(alive, histogram_quantile(0.5, buckets))


@dataclass(frozen=True)
class GatewayRow:
    cluster: str
    alive: bool
    services: int
    latency_ms: float | None

    def cells(self) -> tuple[str, str, str, str]:
        latency = "-"
        if self.alive and self.latency_ms is not None:
            latency = f"{round(self.latency_ms)}ms"
        return (self.cluster, "True" if self.alive else "False", str(self.services), latency)


def render_table(rows: Iterable[GatewayRow]) -> str:
    """The rows under ``CLUSTER ALIVE NUM_SVC LATENCY``, columns padded as kubectl pads them."""
    table = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    return "\n".join(lines) + "\n"
