"""viz's edges with the outside: Pod objects, Prometheus' HTTP API, tap events, the CLI."""

from __future__ import annotations

import json
from typing import Any

import click
import httpx2
import pytest
from click.testing import CliRunner

from mesh.cli import main
from mesh.proxy.discovery import Address
from mesh.proxy.tap import Peer, RequestEnd, RequestInfo, RequestInit, ResponseInit, TapEvent
from mesh.proxy.telemetry import Direction
from mesh.viz.cli import parse_duration
from mesh.viz.fetch import PrometheusSource, ScrapeError, pod_info
from mesh.viz.scrape import Workload, parse_samples, split_by_pod
from mesh.viz.tap_client import TapFilter
from mesh.viz.tapview import Top, enrich, event_text

POD: dict[str, Any] = {
    "metadata": {
        "namespace": "mc-demo",
        "name": "bb-5d9c8f-x7k2p",
        "labels": {"app": "bb", "pod-template-hash": "5d9c8f"},
        "ownerReferences": [
            {"kind": "ReplicaSet", "name": "bb-5d9c8f", "controller": True},
        ],
    },
    "spec": {
        "serviceAccountName": "bb",
        "containers": [
            {"name": "terminus"},
            {
                "name": "linkerd-proxy",
                "env": [
                    {
                        "name": "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
                        "value": "$(_pod_sa).$(_pod_ns).serviceaccount.identity.linkerd.target",
                    }
                ],
            },
        ],
    },
    "status": {"phase": "Running", "podIP": "10.132.0.9"},
}


def test_pod_info_resolves_owners_and_the_proxys_identity() -> None:
    info = pod_info(POD, "target")
    w = info.workload
    assert w.owners == {"replicaset": "bb-5d9c8f", "deployment": "bb"}
    assert w.identity == "bb.mc-demo.serviceaccount.identity.linkerd.target"
    assert info.ip == "10.132.0.9"
    assert w.owner("pod") == "bb-5d9c8f-x7k2p"
    assert w.owner("namespace") == "mc-demo"
    unmeshed = pod_info({**POD, "spec": {"containers": [{"name": "app"}]}})
    assert not unmeshed.workload.meshed


def _prometheus(handler: Any) -> PrometheusSource:
    return PrometheusSource(
        "http://prom:9090/", httpx2.Client(transport=httpx2.MockTransport(handler))
    )


def test_prometheus_source_reads_the_same_series_at_both_ends() -> None:
    asked: list[tuple[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        query, at = request.url.params["query"], request.url.params["time"]
        asked.append((query, at))
        value = 100.0 if float(at) >= 1010 else 0.0
        result = []
        if query == "response_total":
            result = [
                {
                    "metric": {
                        "__name__": "response_total",
                        "namespace": "mc-demo",
                        "pod": "bb-5d9c8f-x7k2p",
                        "direction": "inbound",
                        "classification": "success",
                    },
                    "value": [float(at), str(value)],
                }
            ]
        return httpx2.Response(200, json={"status": "success", "data": {"result": result}})

    source = _prometheus(handler)
    before, after, errors = source.window([pod_info(POD)], 10.0, now=1010.0)
    assert errors == []
    assert {q for q, _ in asked} >= {"response_total", "response_latency_ms_bucket"}
    assert {at for _, at in asked} == {"1000.000", "1010.000"}
    from mesh.viz.window import Window

    fig = Window(before, after).figures(lambda w: True, lambda s: True)
    assert fig.rps == pytest.approx(10.0)


def test_prometheus_errors_are_reported() -> None:
    source = _prometheus(
        lambda r: httpx2.Response(400, json={"status": "error", "error": "bad query"})
    )
    with pytest.raises(ScrapeError, match="bad query"):
        source.window([pod_info(POD)], 10.0, now=1010.0)


def test_split_by_pod_groups_by_target_labels() -> None:
    samples = parse_samples(
        'request_total{namespace="a",pod="p1"} 1\nrequest_total{namespace="a",pod="p2"} 2\n'
        "request_total 3\n"
    )
    grouped = split_by_pod(samples)
    assert sorted(grouped) == [("a", "p1"), ("a", "p2")]


def _event(kind: RequestInit | ResponseInit | RequestEnd, direction: Direction) -> dict[str, Any]:
    info = RequestInfo(
        7,
        direction,
        Peer(Address("10.0.0.1", 40000), (("tls", "true"),)),
        Peer(Address("10.0.0.2", 8080), (("tls", "true"), ("server_id", "bb.x"))),
        "GET",
        "http",
        "bb:8080",
        "/",
    )
    return json.loads(TapEvent(info, kind).to_line())


def test_tap_events_as_linkerds_text_and_enriched() -> None:
    req = _event(RequestInit(), Direction.OUTBOUND)
    assert event_text(req).startswith("req id=0:7 proxy=out src=10.0.0.1:40000 dst=10.0.0.2:8080")
    assert ":authority=bb:8080 :path=/" in event_text(req)
    rsp = _event(ResponseInit(403, 0.0012), Direction.OUTBOUND)
    assert ":status=403 latency=1200µs" in event_text(rsp)
    end = _event(RequestEnd(0.002, 0.0005, 6), Direction.INBOUND)
    assert "end id=0:7 proxy=in " in event_text(end)
    assert "response-length=6B" in event_text(end)
    w = Workload("mc-demo", "slow-cooker-1", {"deployment": "slow-cooker"}, "slow-cooker", "x")
    enriched = enrich(req, w)
    assert enriched["source"]["metadata"]["deployment"] == "slow-cooker"
    assert enriched["source"]["metadata"]["tls"] == "true"  # the proxy's own metadata stays
    assert "pod" not in enriched["destination"]["metadata"]
    bb = Workload("mc-demo", "bb-1", {"deployment": "bb"}, "bb", "bb.x")
    named = enrich(_event(RequestInit(), Direction.OUTBOUND), w, {"10.0.0.2": bb})
    assert named["destination"]["metadata"]["deployment"] == "bb"
    assert named["destination"]["metadata"]["server_id"] == "bb.x"


def test_top_aggregates_by_route() -> None:
    top = Top()
    for stream, status, seconds in ((1, 200, 0.002), (2, 503, 0.010), (3, 200, 0.004)):
        for kind in (RequestInit(), ResponseInit(status, seconds / 2), RequestEnd(seconds, 0, 1)):
            event = _event(kind, Direction.OUTBOUND)
            for key in ("requestInitEvent", "responseInitEvent", "responseEndEvent"):
                if key in event:
                    event[key]["id"]["stream"] = stream
            top.add(event)
    (row,) = top.rows()
    assert row == ["10.0.0.1", "10.0.0.2", "GET", "/", "3", "2ms", "10ms", "4ms", "66.67%"]


def test_tap_filter_query() -> None:
    assert TapFilter("outbound", "bb:8080").query() == "direction=outbound&authority=bb%3A8080"
    assert TapFilter().query() == ""


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2", 2), ("1h", 3600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30x", "s", "-1", "0s", "1m 2s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_duration(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stat", "widgets"], "unknown resource type"),
        (["stat", "deploy", "--window", "soon"], "expected a duration"),
        (["stat", "deploy", "--from", "deploy/a", "--to", "deploy/b"], "cannot be used together"),
        (["stat", "deploy", "--from", "svc/a"], "expected a workload"),
        (["tap", "svc/a"], "expected a workload"),
        (["edges", "svc"], "edges needs a workload"),
        (["authz", "svc/x"], "expected a workload"),
    ],
)
def test_cli_refuses_bad_input_before_touching_a_cluster(
    args: list[str], message: str, tmp_path: Any
) -> None:
    empty = tmp_path / "kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    result = CliRunner().invoke(main, ["viz", *args, "--kubeconfig", str(empty)])
    assert result.exit_code != 0
    if message:
        assert message in result.output


def test_viz_help_documents_every_verb() -> None:
    result = CliRunner().invoke(main, ["viz", "--help"])
    assert result.exit_code == 0
    for verb in ("stat", "authz", "edges", "tap", "top"):
        assert f"  {verb} " in result.output
        sub = CliRunner().invoke(main, ["viz", verb, "--help"])
        assert sub.exit_code == 0
        assert "--namespace" in sub.output
