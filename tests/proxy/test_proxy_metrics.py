"""Prometheus text with Linkerd's metric names and labels."""

from __future__ import annotations

import re
import time

from mesh.proxy.discovery import Address, labels
from mesh.proxy.metrics import LATENCY_BUCKETS_MS, Registry, escape, format_labels
from mesh.proxy.policy import (
    Allow,
    Authorization,
    DefaultPolicy,
    MeshTls,
    Server,
    default_server,
)
from mesh.proxy.telemetry import (
    Direction,
    InboundLabels,
    NoTls,
    ProxyMetrics,
    TlsStatus,
    outbound_labels,
)

CLIENT = "web.demo.serviceaccount.identity.linkerd.east"
SERVER_ID = "bb.demo.serviceaccount.identity.linkerd.west"
SAMPLE = re.compile(r"^([a-z_]+)\{(.*)\} (\S+)$")
PAIR = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Parsed samples of series ``name``."""
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == name:
            found.append((dict(PAIR.findall(match.group(2))), float(match.group(3))))
    return found


def value(text: str, name: str, **want: str) -> float:
    matching = [
        v for lbls, v in samples(text, name) if all(lbls.get(k) == w for k, w in want.items())
    ]
    assert len(matching) == 1, (name, want, samples(text, name))
    return matching[0]


def test_label_values_are_escaped() -> None:
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert format_labels((("x", 'say "hi"'),)) == '{x="say \\"hi\\""}'
    assert format_labels(()) == ""


def test_histogram_buckets_are_cumulative_and_linkerds() -> None:
    registry = Registry()
    histogram = registry.histogram("response_latency_ms", "latency", LATENCY_BUCKETS_MS)
    key = (("direction", "inbound"),)
    for ms in (0.5, 1, 7, 7, 60000):
        histogram.observe(key, ms)
    text = registry.render()
    assert "# TYPE response_latency_ms histogram" in text
    buckets = {lbls["le"]: v for lbls, v in samples(text, "response_latency_ms_bucket")}
    assert list(buckets)[:6] == ["1", "2", "3", "4", "5", "10"]
    assert list(buckets)[-2:] == ["50000", "+Inf"]
    assert (buckets["1"], buckets["5"], buckets["10"], buckets["50000"], buckets["+Inf"]) == (
        2,
        2,
        4,
        4,
        5,
    )
    assert value(text, "response_latency_ms_count") == 5
    assert value(text, "response_latency_ms_sum") == 60015.5


def test_inbound_http_series_carry_tls_client_server_and_authz() -> None:
    metrics = ProxyMetrics()
    server = Server("bb", authorizations=(Authorization("bb-authz", authentication=MeshTls()),))
    conn = InboundLabels(metrics, Address("10.42.0.9", 8080), TlsStatus(CLIENT), server)
    allow = Allow(server, server.authorizations[0])
    conn.http_allowed(allow)
    stats = conn.http("bb.demo.svc.cluster.local:8080", allow.authorization)
    stats.request()
    stats.response(200, 0.0042)
    stats.response(503, 0.010)
    text = metrics.render()
    common = {
        "direction": "inbound",
        "tls": "true",
        "client_id": CLIENT,
        "srv_name": "bb",
        "srv_kind": "server",
        "target_addr": "10.42.0.9:8080",
        "authority": "bb.demo.svc.cluster.local:8080",
    }
    assert value(text, "request_total", **common) == 1
    assert value(text, "response_total", status_code="200", classification="success", **common) == 1
    assert value(text, "response_total", status_code="503", classification="failure", **common) == 1
    assert value(text, "response_latency_ms_bucket", status_code="200", le="5", **common) == 1
    assert (
        value(
            text,
            "inbound_http_authz_allow_total",
            srv_name="bb",
            authz_name="bb-authz",
            authz_kind="authorizationpolicy",
            client_id=CLIENT,
        )
        == 1
    )


def test_denials_are_counted_per_protocol() -> None:
    """CONF-34 / CONF-36: denies show up in the authz deny counters."""
    metrics = ProxyMetrics()
    server = default_server(DefaultPolicy.DENY)
    plain = TlsStatus(reason=NoTls.NO_TLS_FROM_REMOTE)
    conn = InboundLabels(metrics, Address("10.42.0.9", 9000), plain, server)
    conn.http_denied()
    conn.http_denied()
    conn.tcp_denied()
    text = metrics.render()
    want = {"srv_name": "deny", "srv_kind": "default", "tls": "no_identity"}
    assert value(text, "inbound_http_authz_deny_total", **want) == 2
    assert (
        value(text, "inbound_tcp_authz_deny_total", no_tls_reason="no_tls_from_remote", **want) == 1
    )


def test_outbound_series_carry_server_id_and_dst_labels() -> None:
    """CONF-27: outbound metrics to a mirror carry the dst_target_* labels."""
    metrics = ProxyMetrics()
    dst = labels(
        namespace="demo",
        service="bb-west",
        target_cluster="west",
        target_service="bb",
        target_service_namespace="demo",
    )
    base = outbound_labels("bb-west.demo.svc.cluster.local:8080", Address("10.43.0.5", 4143),
                           TlsStatus(SERVER_ID), dst)  # fmt: skip
    metrics.http(base).request()
    text = metrics.render()
    assert (
        value(
            text,
            "request_total",
            direction="outbound",
            tls="true",
            server_id=SERVER_ID,
            dst_target_cluster="west",
            dst_target_service="bb",
            dst_target_service_namespace="demo",
            dst_service="bb-west",
        )
        == 1
    )


def test_tls_labels_follow_upstream() -> None:
    assert TlsStatus(CLIENT).labels(Direction.INBOUND) == (("tls", "true"), ("client_id", CLIENT))
    assert TlsStatus(SERVER_ID).labels(Direction.OUTBOUND) == (
        ("tls", "true"),
        ("server_id", SERVER_ID),
    )
    assert TlsStatus(reason=NoTls.NOT_PROVIDED_BY_SERVICE_DISCOVERY).labels(Direction.OUTBOUND) == (
        ("tls", "no_identity"),
        ("no_tls_reason", "not_provided_by_service_discovery"),
    )
    assert TlsStatus(reason=NoTls.DISABLED).labels(Direction.INBOUND) == (("tls", "disabled"),)


def test_tcp_series() -> None:
    metrics = ProxyMetrics()
    conn = InboundLabels(
        metrics, Address("10.42.0.9", 6379), TlsStatus(CLIENT), default_server(DefaultPolicy.DENY)
    )
    tcp = conn.tcp()
    tcp.opened()
    tcp.read(10)
    tcp.wrote(7)
    text = metrics.render()
    assert value(text, "tcp_open_connections", peer="src", direction="inbound") == 1
    tcp.closed(0.25)
    text = metrics.render()
    assert value(text, "tcp_open_total", peer="src") == 1
    assert value(text, "tcp_close_total", errno="") == 1
    assert value(text, "tcp_open_connections", peer="src") == 0
    assert value(text, "tcp_read_bytes_total", client_id=CLIENT) == 10
    assert value(text, "tcp_write_bytes_total", client_id=CLIENT) == 7


def test_recording_is_cheap() -> None:
    metrics = ProxyMetrics()
    stats = metrics.http(outbound_labels("a:80", Address("10.0.0.1", 80), TlsStatus(SERVER_ID), ()))
    started = time.perf_counter()
    for i in range(100_000):
        stats.request()
        stats.response(200, (i % 50) / 1000)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"100k requests took {elapsed:.2f}s to record"
