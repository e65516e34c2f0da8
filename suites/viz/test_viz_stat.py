"""viz stat: Linkerd's columns, and figures computed from the proxies' own metrics.

A known load (the project's load client, open loop at a fixed rate) runs while
``viz stat`` scrapes twice ``WINDOW`` apart; its RPS must be within 10% of the load's
rate. For the success rate, a run of known outcome (30 answers 200, 10 answers 500)
happens entirely inside an open window (the command says on stderr when its first
scrape is done), so SUCCESS must be exactly 75.00% over exactly 40 requests. The
figures are the client's outbound traffic (``--from pod/client``), which the kubelet's
probes of the server do not touch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from lightkube.generic_resource import load_in_cluster_generic_resources

from harness.kube import wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.viz._support import HERE, WINDOW, WINDOW_OPEN, VizApp, json_rows, row_named, rows

STAT_COLUMNS = [
    "NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN",
]  # fmt: skip
RATE = 10.0
"""Requests per second of the known load."""
LEAD = 8.0
"""Seconds the load keeps going beyond the window (the window opens after it starts)."""
GOOD, BAD = 30, 10
WINDOW_ARG = f"{WINDOW:g}s"


def _load_running(app: VizApp, before: float) -> bool | None:
    m = app.mesh.metrics(app.cluster, app.namespace, "client")
    return True if m.sum("request_total", direction="outbound") > before else None


@pytest.mark.conformance(
    short_name="viz-stat-known-load",
    description="viz stat prints NAME MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 "
    "TCP_CONN for deploy, pod, authority and trafficsplit resources, computed from the "
    "proxies' own metrics over --window (no Prometheus): for an open-loop load of 10 rps its "
    "RPS is within 10% of 10 and its success rate 100.00% (CONF-42, CONF-46)",
    features=["injection", "proxy-metrics", "viz"],
    profile="mesh",
    conf=["CONF-42", "CONF-46"],
)
def test_stat_columns_and_rps_of_a_known_load(viz_app: VizApp, evidence: Evidence) -> None:
    app = viz_app
    ns = app.namespace
    load_in_cluster_generic_resources(app.kube.client)
    app.kube.apply((HERE / "viz-split.yaml").read_text(), ns=ns)
    baseline = app.mesh.metrics(app.cluster, ns, "client").sum(
        "request_total", direction="outbound"
    )
    count = int(RATE * (WINDOW + LEAD))
    with ThreadPoolExecutor(max_workers=1) as pool:
        load = pool.submit(app.client.run, app.url, count, RATE, 5)
        wait_for(
            f"[{app.cluster}] the load client's first requests",
            lambda: _load_running(app, baseline),
            TIMEOUTS.http_call,
            lambda: "no outbound request yet",
        )
        with evidence.step(f"viz stat over a {WINDOW_ARG} window while {RATE:g} rps run"):
            runs = {
                "deploy": app.viz_start("stat", "deploy/server", "--from", "pod/client",
                                        "--window", WINDOW_ARG),
                "json": app.viz_start("stat", "deploy/server", "--from", "pod/client",
                                      "--window", WINDOW_ARG, "-o", "json"),
                "authority": app.viz_start("stat", "authority", "--from", "pod/client",
                                           "--window", WINDOW_ARG),
                "ts": app.viz_start("stat", "ts", "--from", "pod/client", "--window", WINDOW_ARG),
            }  # fmt: skip
            out = {k: r.finish(WINDOW + TIMEOUTS.viz_command) for k, r in runs.items()}
        result = load.result()
    for k, o in out.items():
        evidence.record(f"viz stat {k}", o.stdout)
    summary = {k: v for k, v in result.items() if k != "records"}
    evidence.record("load summary", summary)

    for k in ("deploy", "authority", "ts"):
        header = rows(out[k].stdout)[0]
        assert header == STAT_COLUMNS, (
            f"expected viz stat {k} columns {STAT_COLUMNS}; got {header}:\n{out[k].stdout}"
        )
    server = row_named(out["deploy"].stdout, "server")
    rps = float(server[3].removesuffix("rps"))
    assert abs(rps - RATE) <= 0.1 * RATE, (
        f"expected viz stat deploy/server --from pod/client to show {RATE:g} rps within 10% "
        f"(the load ran {count} requests at {RATE:g}/s); it shows {server[3]}:\n"
        f"{out['deploy'].stdout}"
    )
    assert server[2] == "100.00%", f"expected SUCCESS 100.00%; got {server}"
    assert server[1] == "1/1", f"expected MESHED 1/1 for the one server pod; got {server}"
    (data,) = json_rows(out["json"])
    assert data["rps"] == pytest.approx(RATE, rel=0.1), data
    assert data["success"] == 1.0, data
    au = row_named(out["authority"].stdout, app.authority)
    assert float(au[3].removesuffix("rps")) == pytest.approx(RATE, rel=0.1), out["authority"]
    ts = row_named(out["ts"].stdout, "server-split/server")
    assert float(ts[3].removesuffix("rps")) == pytest.approx(RATE, rel=0.1), out["ts"]

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
    description="viz stat's SUCCESS is exact: 30 answers 200 and 10 answers 500 sent inside "
    "one window show 75.00% over 40 requests (CONF-46)",
    features=["injection", "proxy-metrics", "viz"],
    profile="mesh",
    conf=["CONF-46"],
)
def test_stat_success_rate_is_exact(viz_app: VizApp, evidence: Evidence) -> None:
    app = viz_app
    window = "20s"
    args = ["stat", "deploy/server", "--from", "pod/client", "--window", window, "-v"]
    table = app.viz_start(*args)
    as_json = app.viz_start(*args, "-o", "json")
    try:
        for run in (table, as_json):
            run.wait_stderr(WINDOW_OPEN, TIMEOUTS.viz_command)
        with evidence.step(f"{GOOD} requests answered 200 and {BAD} answered 500"):
            ok = app.client.run(app.url, GOOD, 0, 5, concurrency=4)
            failed = app.client.run(app.url + "status/500", BAD, 0, 5, concurrency=4)
    finally:
        outputs = [run.finish(20 + TIMEOUTS.viz_command) for run in (table, as_json)]
    statuses = [r["status"] for r in ok["records"] + failed["records"]]
    assert (statuses.count(200), statuses.count(500)) == (GOOD, BAD), statuses
    evidence.record("viz stat", outputs[0].stdout)
    evidence.record("viz stat -o json", outputs[1].stdout)
    server = row_named(outputs[0].stdout, "server")
    assert server[2] == "75.00%", (
        f"expected SUCCESS 75.00% ({GOOD} of {GOOD + BAD} inside the window); got {server}:\n"
        f"{outputs[0].stdout}"
    )
    (data,) = json_rows(outputs[1])
    assert data["requests"] == GOOD + BAD, f"expected {GOOD + BAD} requests counted; got {data}"
    assert data["success"] == pytest.approx(GOOD / (GOOD + BAD), abs=1e-9), data
