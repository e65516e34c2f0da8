"""viz figures from two scrapes of metric text the proxy's own registry renders.

The text is made by ``mesh.proxy.telemetry.ProxyMetrics`` recording a known load (the
same code the proxy serves ``/metrics`` with), so parsing, windowing and percentiles are
tested against the real exposition format, labels and buckets.
"""

from __future__ import annotations

import math

import pytest

from mesh.proxy.discovery import Address
from mesh.proxy.policy import Allow, Authorization, Server
from mesh.proxy.telemetry import InboundLabels, ProxyMetrics, TlsStatus, outbound_labels
from mesh.viz.scrape import PodScrape, Workload, parse_samples
from mesh.viz.window import Window, histogram_quantile

BB = Workload("mc-demo", "bb-5d9c8-abcde", {"deployment": "bb", "replicaset": "bb-5d9c8"},
              "bb", "bb.mc-demo.serviceaccount.identity.linkerd.target")  # fmt: skip
COOKER = Workload(
    "mc-demo",
    "slow-cooker-77f-xyz",
    {"deployment": "slow-cooker"},
    "slow-cooker",
    "slow-cooker.mc-demo.serviceaccount.identity.linkerd.source",
)


def scrape(w: Workload, metrics: ProxyMetrics, at: float) -> PodScrape:
    return PodScrape(w, at, parse_samples(metrics.render(), w.name))


def served(m: ProxyMetrics, n: int, latency_ms: float, status: int = 200) -> None:
    server = Server("bb")
    allow = Allow(server, Authorization("bb-authz"))
    labels = InboundLabels(
        m, Address("10.0.0.5", 8080), TlsStatus(identity=COOKER.identity), server
    )
    stats = labels.http("bb.mc-demo.svc.target:8080", allow.authorization)
    for _ in range(n):
        labels.http_allowed(allow)
        stats.request()
        stats.response(status, latency_ms / 1000.0)


def test_rate_success_and_percentiles_over_the_window() -> None:
    m = ProxyMetrics()
    served(m, 20, 3.5)  # before the window: must not count
    before = scrape(BB, m, 100.0)
    served(m, 90, 3.5)
    served(m, 10, 45.0, status=503)
    after = scrape(BB, m, 110.0)
    fig = Window([before], [after]).figures(lambda w: True, lambda s: True)
    assert fig.requests == 100
    assert fig.rps == pytest.approx(10.0)
    assert fig.success_rate == pytest.approx(0.9)
    # 90 in (3, 4], 10 in (40, 50]: p50 interpolates inside (3, 4], p99 inside (40, 50]
    assert fig.latency(0.5) == pytest.approx(3 + (50 / 90))
    assert fig.latency(0.99) == pytest.approx(40 + 10 * (99 - 90) / 10)


def test_a_series_new_in_the_window_counts_from_zero_and_a_reset_from_its_value() -> None:
    old, new = ProxyMetrics(), ProxyMetrics()
    served(old, 50, 1)
    served(new, 7, 1)  # the proxy restarted: counters fell from 50 to 7
    fig = Window([scrape(BB, old, 0.0)], [scrape(BB, new, 7.0)]).figures(
        lambda w: True, lambda s: True
    )
    assert fig.requests == 7
    assert fig.rps == pytest.approx(1.0)
    empty = ProxyMetrics()
    late = ProxyMetrics()
    served(late, 30, 1)
    fig = Window([scrape(BB, empty, 0.0)], [scrape(BB, late, 10.0)]).figures(
        lambda w: True, lambda s: True
    )
    assert fig.requests == 30
    assert fig.rps == pytest.approx(3.0)


def test_no_traffic_is_unknown_not_perfect() -> None:
    m = ProxyMetrics()
    fig = Window([scrape(BB, m, 0.0)], [scrape(BB, m, 5.0)]).figures(lambda w: True, lambda s: True)
    assert fig.success_rate is None
    assert fig.latency(0.5) is None
    assert fig.rps is None


def test_a_pod_without_a_first_scrape_has_no_increase() -> None:
    m = ProxyMetrics()
    served(m, 10, 1)
    fig = Window([], [scrape(BB, m, 5.0)]).figures(lambda w: True, lambda s: True)
    assert fig.requests == 0


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.75, {1.0: 10, 2.0: 20, math.inf: 20}, 1.5),
        (0.5, {1.0: 10, 2.0: 20, math.inf: 20}, 1.0),
        (0.5, {1.0: 0, 2.0: 0, math.inf: 0}, None),
        (0.99, {1.0: 0, 2.0: 0, math.inf: 5}, 2.0),  # beyond the last bound: the last bound
        (0.5, {10.0: 4, math.inf: 4}, 5.0),  # the first bucket starts at 0
        (1.0, {1.0: 3, 5.0: 3, math.inf: 3}, 1.0),
        (0.0, {1.0: 3, math.inf: 3}, 0.0),
        (0.5, {1.0: 3}, None),  # no +Inf bucket: not a histogram
    ],
)
def test_histogram_quantile_as_prometheus(
    q: float, buckets: dict[float, float], expected: float | None
) -> None:
    assert histogram_quantile(q, buckets) == (
        pytest.approx(expected) if expected is not None else None
    )


def test_histogram_quantile_refuses_a_bad_quantile() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        histogram_quantile(1.5, {math.inf: 1})


def test_malformed_text_names_the_pod() -> None:
    with pytest.raises(ValueError, match="from mc-demo/bb"):
        parse_samples('request_total{direction="inbound" 1\n', "mc-demo/bb")


def test_outbound_labels_round_trip() -> None:
    m = ProxyMetrics()
    labels = outbound_labels(
        "bb-target.mc-demo.svc.source:8080",
        Address("10.23.0.7", 8080),
        TlsStatus(identity=BB.identity),
        (("namespace", "mc-demo"), ("service", "bb-target"), ("target_cluster", "target")),
    )
    stats = m.http(labels)
    stats.request()
    stats.response(200, 0.001)
    (sample,) = [s for s in parse_samples(m.render()) if s.name == "response_total"]
    assert sample.labels["dst_target_cluster"] == "target"
    assert sample.labels["server_id"] == BB.identity
