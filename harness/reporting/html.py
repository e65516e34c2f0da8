"""The HTML conformance report: one self-contained file (inline CSS, no scripts, no assets).

Every value that reaches the page goes through ``_e`` (HTML escaping); links are only
ever relative paths inside the report directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from harness.reporting import charts, matrix
from harness.reporting.conformance import RESULTS, by_profile, summary
from harness.reporting.records import TestResult

CSS = (
    """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;white-space:nowrap}
.success{background:#e6f4ea}.failure{background:#fce8e6}.skipped{background:#fef7e0}
.not-covered{background:#f1f1f1;color:#666}td.id{white-space:nowrap;font-weight:bold}
.badge{display:inline-block;padding:2px 10px;margin-right:6px;border-radius:10px}
pre{background:#f8f8f8;padding:6px;overflow-x:auto;max-height:40em;white-space:pre-wrap}
details>summary{cursor:pointer;color:#1a56b0}.muted{color:#777;font-size:90%}
code{font-size:90%}
"""
    + charts.CSS
)
CLUSTER_KEYS = ("name", "domain", "trustDomain", "podCIDR", "serviceCIDR", "version", "nodes")
TEST_COLUMNS = ("result", "test", "description", "features", "CONF", "seconds", "message")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _kv_table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _badges(counts: Mapping[str, int]) -> str:
    return "".join(
        f'<span class="badge {_e(k)}">{_e(k)}: {_e(counts.get(k, 0))}</span>'
        for k in (*RESULTS.values(), "total")
    )


def _environment(env: Mapping[str, Any]) -> str:
    git = env.get("git") or {}
    host = env.get("host") or {}
    topology = env.get("topology") or {}
    general = [
        ("provider", env.get("provider")),
        (
            "topology",
            f"{topology.get('name', '')} ({topology.get('network', '')} network, "
            f"underlay {topology.get('underlay', '')})",
        ),
        ("Kubernetes", ", ".join(env.get("kubernetesVersions") or [])),
        ("isthmus", env.get("isthmusVersion")),
        ("git commit", f"{git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}"),
        ("Python", env.get("python")),
        ("pytest", env.get("pytest")),
        (
            "host kernel",
            f"{host.get('system', '')} {host.get('kernel', '')} {host.get('machine', '')}",
        ),
        ("xdist workers", env.get("xdistWorkers") or "none"),
    ]
    clusters = _table(
        ["cluster", "domain", "trust domain", "pod CIDR", "service CIDR", "version", "nodes"],
        [[c.get(k) for k in CLUSTER_KEYS] for c in topology.get("clusters") or []],
    )
    provisioned = env.get("clusters") or []
    running = (
        _table(
            ["cluster", "API server", "node IPs", "version"],
            [
                [
                    c.get("name"),
                    c.get("apiServer"),
                    ", ".join(c.get("nodeIPs") or []),
                    c.get("version"),
                ]
                for c in provisioned
            ],
        )
        if provisioned
        else '<p class="muted">no clusters were provisioned in this run</p>'
    )
    return f"<h2>Environment</h2>{_kv_table(general)}<h3>Topology</h3>{clusters}{running}"


def _matrix(results: Sequence[TestResult]) -> str:
    """Every id of the conformance list with the tests citing it and their results."""
    rows = matrix.build(results)
    counts = matrix.counts(rows)
    badges = "".join(
        f'<span class="badge {_e(k.replace(" ", "-"))}">{_e(k)}: {_e(v)}</span>'
        for k, v in counts.items()
    )
    lines = []
    for row in rows:
        status = row.status
        tests = "<br>".join(
            f'<span class="{_e(t.result)}">{_e(t.result)}</span> <b>{_e(t.short_name)}</b> '
            f"<code class=muted>{_e(t.nodeid)}</code>"
            for t in row.tests
        )
        lines.append(
            f'<tr class="{_e(status.replace(" ", "-"))}"><td class="id">{_e(row.entry.id)}</td>'
            f"<td>{_e(status)}</td><td>{_e(row.entry.text)}"
            f"<br><span class=muted>{_e(row.entry.section)}</span></td><td>{tests}</td></tr>"
        )
    unknown = matrix.unknown_ids(results)
    extra = (
        "<p>Cited but not in the conformance list: "
        + "; ".join(f"{_e(i)} ({_e(', '.join(n))})" for i, n in unknown.items())
        + "</p>"
        if unknown
        else ""
    )
    return (
        f"<h2>Conformance matrix</h2><p>{badges}</p>{extra}"
        "<table><tr><th>id</th><th>status</th><th>statement</th><th>tests citing it</th></tr>"
        f"{''.join(lines)}</table>"
    )


def _steps(result: TestResult) -> str:
    rows: list[list[Any]] = [
        [f"phase: {when}", "", f"{seconds:.3f}", result.phases.get(when, "")]
        for when, seconds in result.durations.items()
    ]
    for s in (result.evidence or {}).get("steps", []):
        name = "\u00a0\u00a0" * int(s.get("depth", 0)) + str(s.get("name", ""))
        state = "ok" if s.get("ok") else s.get("error", "failed")
        rows.append([name, s.get("start"), s.get("seconds"), state])
    return "<h4>Timings (seconds)</h4>" + _table(["step", "start", "duration", "result"], rows)


def _records(result: TestResult) -> str:
    evidence = result.evidence or {}
    parts = []
    for rec in evidence.get("records", []):
        data = rec.get("data")
        kind = rec.get("kind")
        line = _traffic_line(data) if kind == "traffic" else charts.render(kind, data)
        parts.append(
            f"<h4>{_e(rec.get('kind'))} <span class=muted>at {_e(rec.get('at'))}s</span></h4>"
            f"{line}<pre>{_e(json.dumps(data, indent=2, sort_keys=True))}</pre>"
        )
    if evidence.get("dropped"):
        parts.append(f"<p class=muted>{_e(evidence['dropped'])} more records dropped</p>")
    return "".join(parts)


def _traffic_line(data: Any) -> str:
    """One readable line for a traffic summary (``Evidence.traffic``)."""
    if not isinstance(data, dict):
        return ""

    def histogram(key: str) -> str:
        return ", ".join(f"{k} \u00d7{v}" for k, v in (data.get(key) or {}).items()) or "none"

    return (
        f"<p><b>{_e(data.get('label'))}</b>: {_e(data.get('count'))} requests; statuses "
        f"{_e(histogram('statuses'))}; responders {_e(histogram('responders'))}; p50 "
        f"{_e(data.get('p50_ms'))} ms, p99 {_e(data.get('p99_ms'))} ms</p>"
    )


def _details(result: TestResult) -> str:
    parts = [_steps(result), _records(result)]
    if result.diagnostics:
        href = quote(result.diagnostics.rstrip("/") + "/")
        parts.append(
            f'<p>Diagnostics bundle: <a href="{_e(href)}">{_e(result.diagnostics)}</a></p>'
        )
    for when, text in result.details.items():
        parts.append(f"<h4>Failure in {_e(when)}</h4><pre>{_e(text)}</pre>")
    opened = " open" if result.outcome == "failed" else ""
    return f"<details{opened}><summary>evidence and timings</summary>{''.join(parts)}</details>"


def _tests_table(results: Sequence[TestResult]) -> str:
    head = "".join(f"<th>{h}</th>" for h in TEST_COLUMNS)
    rows = []
    for r in results:
        status = RESULTS[r.outcome]
        meta = r.meta
        rows.append(
            f'<tr class="{_e(status)}"><td>{_e(status)}</td>'
            f"<td><b>{_e(r.short_name)}</b><br><code class=muted>{_e(r.nodeid)}</code></td>"
            f"<td>{_e(meta.get('description', ''))}</td>"
            f"<td>{_e(', '.join(meta.get('features', [])))}</td>"
            f"<td>{_e(', '.join(meta.get('conf', [])))}</td>"
            f'<td class="num">{r.duration:.2f}</td><td>{_e(r.message)}</td></tr>'
            f'<tr><td></td><td colspan="{len(TEST_COLUMNS) - 1}">{_details(r)}</td></tr>'
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render(
    results: Sequence[TestResult],
    implementation: Mapping[str, str],
    environment: Mapping[str, Any],
    run: Mapping[str, Any],
    collection_errors: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole report page."""
    profiles = by_profile(results)
    others = [r for r in sorted(results, key=lambda r: r.nodeid) if not r.meta.get("conformance")]
    counts = summary(results)
    body = [
        f"<h1>Isthmus conformance report</h1><p>{_e(implementation.get('name'))} "
        f"{_e(implementation.get('version'))} &middot; started {_e(run.get('startedAt'))} "
        f"&middot; {_e(run.get('durationSeconds'))} s &middot; exit status "
        f"{_e(run.get('exitStatus'))}</p>",
        _matrix(results),
        f"<h2>Summary</h2><p>{_badges(counts)}</p>",
        _table(
            ["profile", *RESULTS.values(), "total"],
            [[name, *summary(tests).values()] for name, tests in profiles.items()],
        ),
        _environment(environment),
    ]
    for name, tests in profiles.items():
        body.append(f"<h2>Profile: {_e(name)}</h2><p>{_badges(summary(tests))}</p>")
        body.append(_tests_table(tests))
    if others:
        body.append("<h2>Other tests</h2>" + _tests_table(others))
    if collection_errors:
        body.append("<h2>Collection errors</h2>")
        body += [f"<h4>{_e(node)}</h4><pre>{_e(text)}</pre>" for node, text in collection_errors]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Isthmus conformance report</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
