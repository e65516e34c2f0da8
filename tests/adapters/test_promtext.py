"""The Prometheus text helper: parsing, label filters and sums."""

from __future__ import annotations

import pytest

from harness.adapters.promtext import Metrics

TEXT = """\
# HELP request_total Total count of HTTP requests.
# TYPE request_total counter
request_total{direction="inbound",tls="true",client_id="a.ns.serviceaccount.identity.linkerd.t"} 7
request_total{direction="inbound",tls="no_identity",no_tls_reason="no_tls_from_remote"} 3
request_total{direction="outbound",tls="true",server_id="s.ns.serviceaccount.identity.linkerd.t"} 5
# HELP response_latency_ms Elapsed times between a request's header and its response.
# TYPE response_latency_ms histogram
response_latency_ms_bucket{direction="inbound",le="1"} 2
response_latency_ms_bucket{direction="inbound",le="+Inf"} 10
response_latency_ms_sum{direction="inbound"} 42.5
response_latency_ms_count{direction="inbound"} 10
# HELP tcp_open_connections Number of currently-open connections.
# TYPE tcp_open_connections gauge
tcp_open_connections{direction="inbound",peer="src"} 1
"""


def test_sum_filters_by_every_given_label() -> None:
    m = Metrics.parse(TEXT)
    assert m.sum("request_total") == 15
    assert m.sum("request_total", direction="inbound") == 10
    assert m.sum("request_total", direction="inbound", tls="true") == 7
    assert m.sum("request_total", direction="outbound", tls="no_identity") == 0
    assert m.sum("response_latency_ms_count", direction="inbound") == 10
    assert m.sum("response_latency_ms_bucket", le="+Inf") == 10
    assert m.sum("tcp_open_connections") == 1


def test_label_values_and_describe() -> None:
    m = Metrics.parse(TEXT)
    assert m.label_values("request_total", "client_id", direction="inbound") == {
        "a.ns.serviceaccount.identity.linkerd.t"
    }
    assert m.label_values("request_total", "tls") == {"true", "no_identity"}
    assert "server_id='s.ns" in m.describe("request_total", direction="outbound")
    assert m.describe("nothing_total") == "no nothing_total series matching {}"


def test_escaped_label_values_are_unescaped() -> None:
    m = Metrics.parse('x_total{path="/a\\"b",n="1\\\\2"} 1\n')
    assert m.select("x_total")[0].labels == {"path": '/a"b', "n": "1\\2"}


def test_malformed_text_fails_loudly() -> None:
    with pytest.raises(ValueError, match="not Prometheus text exposition"):
        Metrics.parse('request_total{direction="inbound" 1\n')
