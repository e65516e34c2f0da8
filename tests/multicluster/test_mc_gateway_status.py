"""``multicluster gateways``' arithmetic: reading the controller's metrics, and the table."""

from __future__ import annotations

import pytest

from mesh.multicluster.gateway_status import (
    GatewayRow,
    ProbeState,
    histogram_quantile,
    probe_state,
    render_table,
)

METRICS = """\
# HELP gateway_alive Whether the target cluster's gateway answers its probe.
# TYPE gateway_alive gauge
gateway_alive{target_cluster_name="east"} 1.0
gateway_alive{target_cluster_name="north"} 0.0
# HELP gateway_probe_latency_ms Probe latency.
# TYPE gateway_probe_latency_ms histogram
gateway_probe_latency_ms_bucket{le="1.0",target_cluster_name="east"} 0.0
gateway_probe_latency_ms_bucket{le="2.0",target_cluster_name="east"} 4.0
gateway_probe_latency_ms_bucket{le="4.0",target_cluster_name="east"} 8.0
gateway_probe_latency_ms_bucket{le="+Inf",target_cluster_name="east"} 8.0
gateway_probe_latency_ms_count{target_cluster_name="east"} 8.0
gateway_probe_latency_ms_sum{target_cluster_name="east"} 20.0
"""


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [], None),
        (0.5, [(1.0, 0.0), (float("inf"), 0.0)], None),
        (0.5, [(1.0, 0.0), (2.0, 4.0), (4.0, 8.0), (float("inf"), 8.0)], 2.0),
        (0.75, [(1.0, 0.0), (2.0, 4.0), (4.0, 8.0), (float("inf"), 8.0)], 3.0),
        (0.5, [(10.0, 2.0), (float("inf"), 2.0)], 5.0),
        (0.5, [(10.0, 0.0), (float("inf"), 3.0)], 10.0),
    ],
)
def test_histogram_quantile(
    q: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    assert histogram_quantile(q, buckets) == expected


def test_probe_state_per_cluster() -> None:
    east = probe_state(METRICS, "east")
    assert east is not None
    assert east.alive
    assert east.latency_p50_ms == 2.0
    north = probe_state(METRICS, "north")
    assert north is not None
    assert not north.alive
    assert north.latency_p50_ms is None
    assert probe_state(METRICS, "west") is None


def test_table() -> None:
    text = render_table(
        [
            GatewayRow("east", True, 2, 2.4),
            GatewayRow("north-long-name", False, 10, 7.0),
            GatewayRow("south", True, 0, None),
        ]
    )
    assert text.splitlines() == [
        "CLUSTER           ALIVE   NUM_SVC   LATENCY",
        "east              True    2         2ms",
        "north-long-name   False   10        -",
        "south             True    0         -",
    ]
    assert render_table([]) == "CLUSTER   ALIVE   NUM_SVC   LATENCY\n"


def test_reads_what_prometheus_client_writes() -> None:
    """The controller exposes its metrics with prometheus_client; read them back exactly."""
    from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

    registry = CollectorRegistry()
    alive = Gauge("gateway_alive", "alive", ["target_cluster_name"], registry=registry)
    latency = Histogram(
        "gateway_probe_latency_ms",
        "latency",
        ["target_cluster_name"],
        buckets=(1, 2, 5, 10, 50),
        registry=registry,
    )
    alive.labels("east").set(1)
    alive.labels("west").set(0)
    for value in (0.5, 1.5, 1.7, 3, 40):
        latency.labels("east").observe(value)
    text = generate_latest(registry).decode()
    east = probe_state(text, "east")
    assert east == ProbeState(True, 1.75)
    assert probe_state(text, "west") == ProbeState(False, None)
