"""viz stat: Linkerd's columns, and figures computed from the proxies' own metrics.

Known load: the project's load client runs open loop at 10 rps; one ``viz stat``
starts once the load has, and must open and close its window while the load still
runs (checked: a machine too busy to start the command in time fails the test with
that reason, never with a wrong figure); its RPS must be within 10% of 10.

Exact success: ``viz stat`` of deploy, authority and trafficsplit open their windows
first (``-v`` says when the first scrape is done); then 30 requests answered 200 and
10 answered 500 run, entirely inside every window (checked: each command is still
running when the load is done), so each must count exactly 40 requests and SUCCESS
exactly 75.00%.

The figures are the client's outbound traffic (``--from pod/client``), which the
kubelet's probes of the server do not touch.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from lightkube.generic_resource import load_in_cluster_generic_resources

from harness.adapters.viz import VizRun
from harness.kube import wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.viz._support import HERE, WINDOW, WINDOW_OPEN, VizApp, json_rows, row_named, rows

STAT_COLUMNS = [
    "NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN",
]  # fmt: skip
RATE = 10.0
"""Requests per second of the known load."""
LEAD = 20.0
"""Seconds of load beyond the window: the command starts (and opens its window) after
the load does."""
GOOD, BAD = 30, 10
WINDOW_ARG = f"{WINDOW:g}s"
EXACT_WINDOW = 30.0
"""The window of the exact-success commands: they all open it before the load starts."""


def _load_running(app: VizApp, before: float) -> bool | None:
    m = app.mesh.metrics(app.cluster, app.namespace, "client")
    return True if m.sum("request_total", direction="outbound") > before else None


@pytest.mark.conformance(
    short_name="viz-stat-known-load",
    description="viz stat prints NAME MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 "
    "TCP_CONN for deploy and pod resources, computed from the proxies' own metrics over "
    "--window (no Prometheus): for an open-loop load of 10 rps its RPS is within 10% of 10 "
    "and its success rate 100.00%; every pod shows MESHED 1/1 and a TCP_CONN count "
    "(CONF-42, CONF-46)",
    features=["injection", "proxy-metrics", "viz"],
    profile="mesh",
    conf=["CONF-42", "CONF-46"],
)
def test_stat_columns_and_rps_of_a_known_load(viz_app: VizApp, evidence: Evidence) -> None:
    app = viz_app
    ns = app.namespace
    baseline = app.mesh.metrics(app.cluster, ns, "client").sum(
        "request_total", direction="outbound"
    )
    count = int(RATE * (WINDOW + LEAD))
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        load = pool.submit(app.client.run, app.url, count, RATE, 5)
        wait_for(
            f"[{app.cluster}] the load client's first requests",
            lambda: _load_running(app, baseline),
            TIMEOUTS.http_call,
            lambda: "no outbound request yet",
        )
        with evidence.step(f"viz stat over a {WINDOW_ARG} window while {RATE:g} rps run"):
            run = app.viz_start(
                "stat", "deploy/server", "--from", "pod/client", "--window", WINDOW_ARG, "-v"
            )
            out = run.finish(WINDOW + TIMEOUTS.viz_command)
            closed = time.monotonic() - started
        result = load.result()
    evidence.record("viz stat", out.stdout)
    summary = {k: v for k, v in result.items() if k != "records"}
    evidence.record("load summary", summary)
    evidence.record("window closed after the load started (s)", closed)
    assert closed < result["summary"]["duration_s"], (
        f"the load ({result['summary']['duration_s']:.1f}s) ended before the window did "
        f"({closed:.1f}s after it started; the machine is too busy): the figures cannot be "
        f"compared with its rate"
    )
    header = rows(out.stdout)[0]
    assert header == STAT_COLUMNS, f"expected columns {STAT_COLUMNS}; got:\n{out.stdout}"
    server = row_named(out.stdout, "server")
    rps = float(server[3].removesuffix("rps"))
    assert abs(rps - RATE) <= 0.1 * RATE, (
        f"expected viz stat deploy/server --from pod/client to show {RATE:g} rps within 10% "
        f"(the load ran {count} requests at {RATE:g}/s); it shows {server[3]}:\n{out.stdout}"
    )
    assert server[2] == "100.00%", f"expected SUCCESS 100.00%; got {server}"
    assert server[1] == "1/1", f"expected MESHED 1/1 for the one server pod; got {server}"

    with evidence.step("viz stat of the namespace's pods: every pod meshed, TCP_CONN counted"):
        pods = app.viz("stat", "pod", "--window", "2s", window=2)
    evidence.record("viz stat pod", pods.stdout)
    for name in ("client", "evil"):
        assert row_named(pods.stdout, name)[1] == "1/1", pods.stdout
    server_pods = [r for r in rows(pods.stdout)[1:] if r[0].startswith("server-")]
    assert server_pods, f"expected the server's pod in viz stat pod:\n{pods.stdout}"
    assert server_pods[0][-1].isdigit(), f"expected a TCP_CONN count; got {server_pods[0]}"


@pytest.mark.conformance(
    short_name="viz-stat-exact-success",
    description="viz stat's figures are exact: 30 answers 200 and 10 answers 500 sent inside "
    "one window show SUCCESS 75.00% over 40 requests, with the NAME MESHED SUCCESS RPS "
    "LATENCY_P50 LATENCY_P95 LATENCY_P99 TCP_CONN columns, for deploy, authority and "
    "trafficsplit alike (CONF-42, CONF-46)",
    features=["injection", "proxy-metrics", "viz"],
    profile="mesh",
    conf=["CONF-42", "CONF-46"],
)
def test_stat_success_rate_is_exact(viz_app: VizApp, evidence: Evidence) -> None:
    app = viz_app
    load_in_cluster_generic_resources(app.kube.client)
    app.kube.apply((HERE / "viz-split.yaml").read_text(), ns=app.namespace)
    window = ["--from", "pod/client", "--window", f"{EXACT_WINDOW:g}s", "-v"]
    kinds = {"deploy": "deploy/server", "authority": "authority", "ts": "ts"}
    runs: dict[str, VizRun] = {}
    for name, kind in kinds.items():
        runs[name] = app.viz_start("stat", kind, *window)
        runs[f"{name} json"] = app.viz_start("stat", kind, *window, "-o", "json")
    try:
        for run in runs.values():
            run.wait_stderr(WINDOW_OPEN, TIMEOUTS.viz_command)
        with evidence.step(f"{GOOD} requests answered 200 and {BAD} answered 500"):
            ok = app.client.run(app.url, GOOD, 0, 5, concurrency=4)
            failed = app.client.run(app.url + "status/500", BAD, 0, 5, concurrency=4)
        closed_early = [name for name, run in runs.items() if run.process.poll() is not None]
    finally:
        out = {k: run.finish(EXACT_WINDOW + TIMEOUTS.viz_command) for k, run in runs.items()}
    for k, o in out.items():
        evidence.record(f"viz stat {k}", o.stdout)
    assert not closed_early, (
        f"the windows of {closed_early} closed before the load was done (the machine is too "
        f"busy): their figures cannot be exact"
    )
    statuses = [r["status"] for r in ok["records"] + failed["records"]]
    assert (statuses.count(200), statuses.count(500)) == (GOOD, BAD), statuses
    names = {"deploy": "server", "authority": app.authority, "ts": "server-split/server"}
    for name, row in names.items():
        table = out[name].stdout
        assert rows(table)[0] == STAT_COLUMNS, f"expected columns {STAT_COLUMNS}:\n{table}"
        cells = row_named(table, row)
        assert cells[2] == "75.00%", (
            f"expected viz stat {kinds[name]} to show SUCCESS 75.00% ({GOOD} of {GOOD + BAD} "
            f"inside the window) on row {row}; got {cells}:\n{table}"
        )
        (data,) = json_rows(out[f"{name} json"])
        assert data["requests"] == GOOD + BAD, (
            f"expected viz stat {kinds[name]} -o json to count {GOOD + BAD} requests; got {data}"
        )
        assert data["success"] == pytest.approx(GOOD / (GOOD + BAD), abs=1e-9), data
