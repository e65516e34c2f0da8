"""viz authz and viz tap as seed 000 reads them, on one cluster.

Seed 000's policy (``Server`` + ``AuthorizationPolicy`` + ``MeshTLSAuthentication``)
admits only the ``client`` service account; ``evil`` is refused with 403. ``viz authz``
must show the admitted traffic on the policy's row and the refused traffic as
UNAUTHORIZED; ``viz tap -o json`` of each client, filtered with the seed's own jq
expression, must print 200s for one and 403s for the other.
"""

from __future__ import annotations

import pytest
from lightkube.generic_resource import load_in_cluster_generic_resources

from harness.adapters.viz import VizOutput
from harness.jqfilter import jq_values
from harness.kube import wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import statuses
from suites.viz._support import HERE, TAP_OPEN, WINDOW_OPEN, VizApp, json_rows, rows

AUTHZ_COLUMNS = [
    "ROUTE", "SERVER", "AUTHORIZATION", "UNAUTHORIZED", "SUCCESS", "RPS",
    "LATENCY_P50", "LATENCY_P95", "LATENCY_P99",
]  # fmt: skip
SEED_JQ = ".responseInitEvent | select( . != null ) | .httpStatus"
"""Seed 000's filter, verbatim."""
GOOD, EVIL = 20, 10
TAPPED = 5
"""Requests each client sends while its tap is open; each yields three events."""


@pytest.fixture(scope="module")
def policed(viz_app: VizApp) -> VizApp:
    """The app with seed 000's policy admitting ``client`` only, in effect."""
    app = viz_app
    load_in_cluster_generic_resources(app.kube.client)
    app.kube.apply(
        (HERE / "viz-policy.yaml").read_text(),
        ns=app.namespace,
        identity=app.identity("client"),
    )
    seen: list[str] = []

    def refused() -> bool | None:
        result = app.evil.run(app.url, 3, 0, 5, concurrency=1)
        seen[:] = [str(s) for s in statuses(result)]
        return True if statuses(result) == {"403": 3} else None

    wait_for(
        f"[{app.cluster}] the policy refuses evil with 403",
        refused,
        TIMEOUTS.convergence,
        lambda: f"evil got {seen}",
    )
    return app


def _authz_row(out: VizOutput, authorization: str) -> list[str]:
    table = rows(out.stdout)
    if authorization:
        found = [
            r for r in table[1:] if r[0] == "default" and r[1] == "server" and r[2] == authorization
        ]
    else:  # the refused row has no AUTHORIZATION cell: 8 cells, not 9
        found = [r for r in table[1:] if r[:2] == ["default", "server"] and len(r) == 8]
    assert len(found) == 1, (
        f"expected one viz authz row for Server server with authorization {authorization!r}; "
        f"it shows:\n{out.stdout}"
    )
    return found[0]


@pytest.mark.conformance(
    short_name="viz-authz-seed-000",
    description="viz authz prints ROUTE SERVER AUTHORIZATION UNAUTHORIZED SUCCESS RPS "
    "LATENCY_P50 LATENCY_P95 LATENCY_P99: the admitted client's requests on the "
    "AuthorizationPolicy's row (exactly those sent in the window), the refused client's as "
    "UNAUTHORIZED on the Server's row without authorization (CONF-38)",
    features=["injection", "proxy-metrics", "default-inbound-policy", "viz"],
    profile="mesh",
    conf=["CONF-38"],
)
def test_authz_shows_admitted_and_refused(policed: VizApp, evidence: Evidence) -> None:
    app = policed
    args = ["authz", "deploy/server", "--window", "20s", "-v"]
    table, as_json = app.viz_start(*args), app.viz_start(*args, "-o", "json")
    try:
        for run in (table, as_json):
            run.wait_stderr(WINDOW_OPEN, TIMEOUTS.viz_command)
        with evidence.step(f"client sends {GOOD} requests, evil {EVIL}"):
            good = app.client.run(app.url, GOOD, 0, 5, concurrency=2)
            evil = app.evil.run(app.url, EVIL, 0, 5, concurrency=2)
    finally:
        out = [run.finish(20 + TIMEOUTS.viz_command) for run in (table, as_json)]
    seen = (statuses(good), statuses(evil))
    assert seen == ({"200": GOOD}, {"403": EVIL}), f"expected client all 200, evil all 403: {seen}"
    evidence.record("viz authz", out[0].stdout)
    evidence.record("viz authz -o json", out[1].stdout)
    header = rows(out[0].stdout)[0]
    assert header == AUTHZ_COLUMNS, f"expected columns {AUTHZ_COLUMNS}; got:\n{out[0].stdout}"
    admitted = _authz_row(out[0], "authorizationpolicy/server-authz")
    assert admitted[3:5] == ["0.0rps", "100.00%"], admitted
    refused = _authz_row(out[0], "")
    assert refused[2] != "0.0rps", f"expected UNAUTHORIZED above 0 for evil's 403s; got {refused}"
    data = {(r["server"], r["authorization"]): r for r in json_rows(out[1])}
    policy_row = data[("server", "authorizationpolicy/server-authz")]
    assert policy_row["requests"] == GOOD, (
        f"expected exactly the {GOOD} admitted requests of the window; got {policy_row}"
    )
    assert (data[("server", None)]["unauthorized_rps"] or 0) > 0, data


@pytest.mark.conformance(
    short_name="viz-tap-json-seed-000",
    description="viz tap -o json prints one event per line in Linkerd's shape "
    "(requestInitEvent, responseInitEvent.httpStatus, responseEndEvent, source/destination "
    "with identities): seed 000's jq filter prints only 200 for the admitted client and only "
    "403 for the refused one (CONF-38, CONF-47)",
    features=["injection", "default-inbound-policy", "viz"],
    profile="mesh",
    conf=["CONF-38", "CONF-47"],
)
def test_tap_json_with_the_seeds_jq_filter(policed: VizApp, evidence: Evidence) -> None:
    app = policed
    taps = {
        who: app.viz_start("tap", f"pod/{who}", "-o", "json", "-v", "--direction", "outbound",
                           "--authority", app.authority, "--limit", str(3 * TAPPED),
                           "--duration", "60s")
        for who in ("client", "evil")
    }  # fmt: skip
    try:
        for run in taps.values():
            run.wait_stderr(TAP_OPEN, TIMEOUTS.viz_command)
        with evidence.step(f"each client sends {TAPPED} requests while tapped"):
            app.client.run(app.url, TAPPED, 0, 5, concurrency=1)
            app.evil.run(app.url, TAPPED, 0, 5, concurrency=1)
    finally:
        out = {who: run.finish(60 + TIMEOUTS.viz_command) for who, run in taps.items()}
    for who, o in out.items():
        evidence.record(f"viz tap pod/{who} -o json", o.stdout)
    expected = {"client": 200, "evil": 403}
    for who, status in expected.items():
        codes = jq_values(SEED_JQ, out[who].stdout)
        assert codes == [status] * TAPPED, (
            f"expected `{SEED_JQ}` over viz tap pod/{who} to print {status} x{TAPPED}; "
            f"it printed {codes}:\n{out[who].stdout[:2000]}"
        )
    events = jq_values(".", out["client"].stdout)
    assert len(events) == 3 * TAPPED, f"expected {3 * TAPPED} events; got {len(events)}"
    kinds = {k for e in events for k in e if k.endswith("Event")}
    assert kinds == {"requestInitEvent", "responseInitEvent", "responseEndEvent"}, kinds
    server_ids = set(jq_values(".destination.metadata.server_id", out["client"].stdout))
    assert server_ids == {app.identity("server")}, (
        f"expected every event's destination to carry the server's identity; got {server_ids}"
    )
    sources = set(jq_values(".source.metadata.pod", out["client"].stdout))
    assert sources == {"client"}, f"expected the tapped pod as every source; got {sources}"
