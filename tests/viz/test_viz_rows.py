"""viz stat, authz and edges rows, and their tables, from the proxy's own metric text.

Scenario: seed 000. slow-cooker (source cluster) sends 10 rps to bb through the mirror
``bb-target``; slow-cooker-evil sends 10 rps and is refused (403); a kubelet probe hits
bb's default probe route.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mesh.proxy.discovery import Address
from mesh.proxy.policy import Allow, Authorization, Server
from mesh.proxy.telemetry import InboundLabels, ProxyMetrics, TlsStatus, outbound_labels
from mesh.viz.edges import edges
from mesh.viz.render import render_authz, render_edges, render_stat
from mesh.viz.resources import Resource, Selection, parse_resource, parse_selection
from mesh.viz.scrape import PodScrape, Workload, parse_samples
from mesh.viz.stat import ServiceInfo, SplitInfo, StatQuery, authz_rows, stat_rows
from mesh.viz.window import Window

NS = "mc-demo"
BB_ID = "bb.mc-demo.serviceaccount.identity.linkerd.cluster.local"
COOKER_ID = "slow-cooker.mc-demo.serviceaccount.identity.linkerd.cluster.local"
EVIL_ID = "slow-cooker-evil.mc-demo.serviceaccount.identity.linkerd.cluster.local"
BB = Workload(NS, "bb-1", {"deployment": "bb"}, "bb", BB_ID, "target")
COOKER = Workload(NS, "slow-cooker-1", {"deployment": "slow-cooker"}, "slow-cooker", COOKER_ID)
UNMESHED = Workload(NS, "curl-1", {"deployment": "curl"}, "default", None)
AUTHORITY = "bb-target.mc-demo.svc.source:8080"
WINDOW = 10.0


def _bb_traffic(m: ProxyMetrics, seconds: float) -> None:
    server = Server("bb")
    good = InboundLabels(m, Address("10.0.0.5", 8080), TlsStatus(identity=COOKER_ID), server)
    allow = Allow(server, Authorization("bb-authz"))
    ok = good.http("bb.mc-demo.svc.target:8080", allow.authorization)
    evil = InboundLabels(m, Address("10.0.0.5", 8080), TlsStatus(identity=EVIL_ID), server)
    refused = evil.http("bb.mc-demo.svc.target:8080", None)
    probe_server = Server("all-unauthenticated", kind="default")
    probe = Allow(probe_server, Authorization("probe", kind="default"))
    kubelet = InboundLabels(m, Address("10.0.0.5", 4191), TlsStatus(), probe_server)
    probes = kubelet.http("10.0.0.5:4191", probe.authorization)
    for _ in range(int(10 * seconds)):
        good.http_allowed(allow)
        ok.request()
        ok.response(200, 0.0015)
        evil.http_denied()
        refused.request()
        refused.response(403, 0.0005)
    for _ in range(int(seconds)):
        kubelet.http_allowed(probe)
        probes.request()
        probes.response(200, 0.0008)
    tcp = good.tcp()
    tcp.opened()


def _cooker_traffic(m: ProxyMetrics, seconds: float) -> None:
    labels = outbound_labels(
        AUTHORITY,
        Address("10.23.0.7", 8080),
        TlsStatus(identity=BB_ID),
        (("namespace", NS), ("service", "bb-target"), ("target_cluster", "target")),
    )
    stats = m.http(labels)
    for _ in range(int(10 * seconds)):
        stats.request()
        stats.response(200, 0.002)
    m.tcp((*labels, ("peer", "dst"))).opened()


def _local_traffic(m: ProxyMetrics, seconds: float) -> None:
    labels = outbound_labels(
        "bb.mc-demo.svc.cluster.local:8080",
        Address("10.0.0.5", 8080),
        TlsStatus(identity=BB_ID),
        (("namespace", NS), ("service", "bb"), ("deployment", "bb"), ("pod", "bb-1")),
    )
    stats = m.http(labels)
    for _ in range(int(5 * seconds)):
        stats.request()
        stats.response(200, 0.002)


def _window(*pods: tuple[Workload, Callable[[ProxyMetrics, float], None]]) -> Window:
    before, after = [], []
    for w, traffic in pods:
        m = ProxyMetrics()
        before.append(PodScrape(w, 0.0, parse_samples(m.render())))
        traffic(m, WINDOW)
        after.append(PodScrape(w, WINDOW, parse_samples(m.render())))
    return Window(before, after)


@pytest.fixture
def window() -> Window:
    return _window((BB, _bb_traffic), (COOKER, _cooker_traffic), (UNMESHED, lambda m, s: None))


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_stat_deploy_counts_inbound_of_its_pods(window: Window) -> None:
    rows = stat_rows(window, StatQuery(Selection("deployment"), NS))
    by_name = {r.name: r for r in rows}
    assert set(by_name) == {"bb", "slow-cooker", "curl"}
    bb = by_name["bb"].figures
    # 100 allowed 200s, 100 refused 403s (not failures), 10 probes, over 10 s
    assert bb.rps == pytest.approx(21.0)
    assert bb.success_rate == 1.0
    assert bb.tcp_conn == 1
    assert by_name["curl"].meshed == "0/1"
    assert by_name["bb"].meshed == "1/1"
    table = _table(render_stat(rows, "deployment", "table", False))
    assert table[0] == [
        "NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN"
    ]  # fmt: skip
    # 110 answers within 1 ms, 100 within (1, 2]: p50 falls in the first bucket
    assert ["bb", "1/1", "100.00%", "21.0rps", "1ms", "2ms", "2ms", "1"] in table
    assert ["curl", "0/1", "-", "-", "-", "-", "-", "-"] in table


def test_stat_authority_from_a_client_shows_the_mirror_and_its_cluster(window: Window) -> None:
    q = StatQuery(Selection("authority"), NS, from_=parse_resource("deploy/slow-cooker", NS))
    services = [ServiceInfo(NS, "bb-target", "target"), ServiceInfo(NS, "bb")]
    (row,) = stat_rows(window, q, services)
    assert row.name == AUTHORITY
    assert row.cluster == "target"
    assert row.figures.rps == pytest.approx(10.0)
    assert row.figures.success_rate == 1.0
    table = _table(render_stat([row], "authority", "table", False))
    assert table[1] == [AUTHORITY, "-", "100.00%", "10.0rps", "2ms", "2ms", "2ms", "-"]
    wide = _table(render_stat([row], "authority", "wide", False))
    assert wide[0][-1] == "CLUSTER"
    assert wide[1][-1] == "target"


def test_stat_deploy_to_and_from(window: Window) -> None:
    local = _window((COOKER, _local_traffic), (BB, lambda m, s: None))
    to = StatQuery(Selection("deployment", ("slow-cooker",)), NS, to=Resource("deployment", "bb"))
    (row,) = stat_rows(local, to)
    assert row.figures.rps == pytest.approx(5.0)
    frm = StatQuery(
        Selection("deployment", ("bb",)), NS, from_=Resource("deployment", "slow-cooker")
    )
    (row,) = stat_rows(local, frm)
    assert row.figures.rps == pytest.approx(5.0)
    with pytest.raises(ValueError, match="cannot be used together"):
        stat_rows(local, StatQuery(Selection("deployment"), NS, frm.from_, to.to))


def test_stat_svc_counts_outbound_towards_it_and_names_a_mirrors_cluster(window: Window) -> None:
    services = [ServiceInfo(NS, "bb-target", "target"), ServiceInfo(NS, "bb")]
    rows = {r.name: r for r in stat_rows(window, StatQuery(Selection("service"), NS), services)}
    assert rows["bb-target"].figures.rps == pytest.approx(10.0)
    assert rows["bb-target"].cluster == "target"
    assert rows["bb"].figures.rps is None
    out = json.loads(render_stat(list(rows.values()), "service", "json", False))
    mirror = next(o for o in out if o["name"] == "bb-target")
    assert mirror["cluster"] == "target"
    assert mirror["rps"] == pytest.approx(10.0)


def test_stat_trafficsplit_rows_per_leaf(window: Window) -> None:
    split = SplitInfo(NS, "bb-split", "bb", (("bb", "50"), ("bb-target", "50")))
    rows = stat_rows(window, StatQuery(Selection("trafficsplit"), NS), splits=[split])
    assert [(r.name, r.extra["leaf"]) for r in rows] == [
        ("bb-split", "bb"),
        ("bb-split", "bb-target"),
    ]
    assert rows[1].figures.rps == pytest.approx(10.0)
    table = _table(render_stat(rows, "trafficsplit", "table", False))
    assert table[0][0] == "NAME"
    assert table[2][0] == "bb-split/bb-target"
    wide = _table(render_stat(rows, "trafficsplit", "wide", False))
    assert wide[0][:4] == ["NAME", "APEX", "LEAF", "WEIGHT"]


def test_authz_rows_as_seed_000(window: Window) -> None:
    rows = authz_rows(window, Resource("deployment"), NS)
    table = _table(render_authz(rows, "table"))
    assert table[0] == [
        "ROUTE", "SERVER", "AUTHORIZATION", "UNAUTHORIZED", "SUCCESS", "RPS",
        "LATENCY_P50", "LATENCY_P95", "LATENCY_P99",
    ]  # fmt: skip
    assert ["default", "bb", "10.0rps", "0.00%", "0.0rps", "0ms", "0ms", "0ms"] in table
    assert [
        "default", "bb", "authorizationpolicy/bb-authz", "0.0rps", "100.00%", "10.0rps",
        "2ms", "2ms", "2ms",
    ] in table  # fmt: skip
    assert [
        "probe", "default:all-unauthenticated", "default/probe", "0.0rps", "100.00%",
        "1.0rps", "1ms", "1ms", "1ms",
    ] in table  # fmt: skip


def test_edges_show_both_identities_and_the_remote_cluster() -> None:
    m_bb, m_cooker = ProxyMetrics(), ProxyMetrics()
    _bb_traffic(m_bb, 1)
    _cooker_traffic(m_cooker, 1)
    scrapes = [
        PodScrape(BB, 0.0, parse_samples(m_bb.render())),
        PodScrape(COOKER, 0.0, parse_samples(m_cooker.render())),
    ]
    found = edges(scrapes, "deployment", NS)
    out = {(e.src, e.dst): e for e in found}
    remote = out[("slow-cooker", "svc/bb-target")]
    assert (remote.client_id, remote.server_id, remote.dst_cluster) == (COOKER_ID, BB_ID, "target")
    # bb sees slow-cooker and slow-cooker-evil by identity: their pods are not scraped here
    assert out[("slow-cooker", "bb")].client_id == COOKER_ID
    assert out[("slow-cooker-evil", "bb")].server_id == BB_ID
    table = render_edges(found, "deployment", "table")
    assert table.splitlines()[0].split() == [
        "SRC", "DST", "SRC_NS", "DST_NS", "CLIENT_ID", "SERVER_ID", "MSG"
    ]  # fmt: skip
    assert "svc/bb-target@target" in table


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["deploy"], Selection("deployment")),
        (["deploy/bb"], Selection("deployment", ("bb",))),
        (["po", "a", "b"], Selection("pod", ("a", "b"))),
        (["au"], Selection("authority")),
        (["ts/split"], Selection("trafficsplit", ("split",))),
        (["svc/a", "svc/b"], Selection("service", ("a", "b"))),
    ],
)
def test_selection_spellings(args: list[str], expected: Selection) -> None:
    assert parse_selection(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "expected a resource type"), (["widgets"], "unknown resource type"),
     (["deploy/a", "svc/b"], "one type"), (["deploy/"], "type/name")],
)  # fmt: skip
def test_selection_errors(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_selection(args)


REAL = Path(__file__).parent / "data" / "source-client-gateway-mode.prom"
"""A real scrape of a meshed load client in the source cluster of a flat two-cluster run,
after it called ``server-target`` (a gateway-mode mirror); namespace renamed to mc-demo."""


def test_a_real_scrape_gives_the_cross_cluster_edge_through_the_gateway() -> None:
    client = Workload(
        NS, "client", {}, "default", f"default.{NS}.serviceaccount.identity.linkerd.source"
    )
    scrape = PodScrape(client, 0.0, parse_samples(REAL.read_text(), "client"))
    found = {e.dst: e for e in edges([scrape], "pod", NS)}
    gateway = found["svc/server"]
    assert gateway.dst_cluster == "target"
    assert (
        gateway.server_id
        == "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.target"
    )
    assert gateway.client_id == client.identity
    assert set(found) == {"svc/server"}
    same = Window([scrape], [PodScrape(client, 5.0, scrape.samples)])
    fig = same.figures(lambda w: True, lambda s: s.labels.get("direction") == "outbound")
    assert fig.requests == 0
    assert fig.rps == 0.0
    services = [ServiceInfo(NS, "server-target", "target")]
    q = StatQuery(Selection("authority"), NS, from_=Resource("pod", "client", NS))
    by_name = {r.name: r for r in stat_rows(same, q, services)}
    assert by_name[f"server-target.{NS}.svc.source:8080"].cluster == "target"
