"""Tables and JSON of ``viz`` with Linkerd's column names and number formats, sans I/O.

Rules:
- ``stat`` columns are ``NAME MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95
  LATENCY_P99 TCP_CONN`` (CONF-42), preceded by ``NAMESPACE`` when rows span
  namespaces; ``-o wide`` adds ``READ_BYTES/SEC WRITE_BYTES/SEC`` and
  ``CLUSTER`` (a mirror's or remote endpoint's cluster), and for traffic splits
  ``APEX LEAF WEIGHT``.
- ``authz`` columns are ``ROUTE SERVER AUTHORIZATION UNAUTHORIZED SUCCESS RPS
  LATENCY_P50 LATENCY_P95 LATENCY_P99`` (CONF-38).
- ``edges`` columns are ``SRC DST SRC_NS DST_NS CLIENT_ID SERVER_ID MSG``; wide
  adds ``SRC_CLUSTER DST_CLUSTER``; a destination in another cluster is shown
  as ``DST@cluster`` in every output.
- Numbers as Linkerd prints them: ``100.00%``, ``10.3rps``, ``1ms`` (whole
  milliseconds), ``-`` when there was no traffic to compute from.
- Text columns are left-aligned, figures right-aligned, three spaces apart.
- JSON is a list of objects with Linkerd's ``-o json`` keys, ``null`` for unknown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from mesh.viz.edges import Edge
from mesh.viz.stat import AuthzRow, StatRow
from mesh.viz.window import Figures

__all__ = [
    "AUTHZ_COLUMNS",
    "EDGES_COLUMNS",
    "STAT_COLUMNS",
    "render_authz",
    "render_edges",
    "render_stat",
    "table",
]

STAT_COLUMNS = (
    "NAME",
    "MESHED",
    "SUCCESS",
    "RPS",
    "LATENCY_P50",
    "LATENCY_P95",
    "LATENCY_P99",
    "TCP_CONN",
)
AUTHZ_COLUMNS = (
    "ROUTE",
    "SERVER",
    "AUTHORIZATION",
    "UNAUTHORIZED",
    "SUCCESS",
    "RPS",
    "LATENCY_P50",
    "LATENCY_P95",
    "LATENCY_P99",
)
EDGES_COLUMNS = ("SRC", "DST", "SRC_NS", "DST_NS", "CLIENT_ID", "SERVER_ID", "MSG")
_LEFT = {
    "NAMESPACE",
    "NAME",
    "ROUTE",
    "SERVER",
    "AUTHORIZATION",
    "APEX",
    "LEAF",
    "CLUSTER",
    *EDGES_COLUMNS,
    "SRC_CLUSTER",
    "DST_CLUSTER",
    "Source",
    "Destination",
    "Method",
    "Path",
}


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` under ``columns``, aligned; text left, figures right, 3 spaces apart."""
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.ljust(w) if col in _LEFT else cell.rjust(w)
            for col, cell, w in zip(columns, cells, widths, strict=True)
        ]
        return "   ".join(out).rstrip()

    return "\n".join([line(columns), *(line(r) for r in rows)]) + "\n"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f}%"


def rps(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}rps"


def millis(value: float | None) -> str:
    return "-" if value is None else f"{math.floor(value + 0.5)}ms"


def _bytes_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}B/s"


def _figures(f: Figures) -> list[str]:
    return [percent(f.success_rate), rps(f.rps), *(millis(f.latency(q)) for q in (0.5, 0.95, 0.99))]


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _figures_json(f: Figures) -> dict[str, Any]:
    return {
        "success": _round(f.success_rate),
        "rps": _round(f.rps),
        "latency_ms_p50": _round(f.latency(0.5)),
        "latency_ms_p95": _round(f.latency(0.95)),
        "latency_ms_p99": _round(f.latency(0.99)),
        "requests": f.requests,
        "window_seconds": _round(f.seconds, 3),
    }


def render_stat(rows: Sequence[StatRow], kind: str, output: str, multi_namespace: bool) -> str:
    """``viz stat`` output for ``rows`` of ``kind`` (``table``, ``wide`` or ``json``)."""
    if output == "json":
        out = []
        for r in rows:
            read, write = r.figures.byte_rates()
            item: dict[str, Any] = {
                "namespace": r.namespace,
                "kind": kind,
                "name": r.name,
                "meshed": r.meshed,
                **_figures_json(r.figures),
                "tcp_open_connections": r.figures.tcp_conn,
                "tcp_read_bytes_rate": _round(read),
                "tcp_write_bytes_rate": _round(write),
                "cluster": r.cluster or None,
            }
            item.update(r.extra)
            out.append(item)
        return json.dumps(out, indent=2) + "\n"
    if not rows:
        return "No traffic found.\n"
    columns = list(STAT_COLUMNS)
    if multi_namespace:
        columns.insert(0, "NAMESPACE")
    wide = output == "wide"
    split = kind == "trafficsplit"
    if wide:
        columns += ["READ_BYTES/SEC", "WRITE_BYTES/SEC", "CLUSTER"]
        if split:
            columns[1 + multi_namespace : 1 + multi_namespace] = ["APEX", "LEAF", "WEIGHT"]
    lines = []
    for r in rows:
        f = r.figures
        tcp = "-" if f.tcp_conn is None or kind in ("service", "authority") else f"{f.tcp_conn:.0f}"
        name = r.name
        if split and not wide:
            name = f"{r.name}/{r.extra.get('leaf', '')}"
        cells = [name, r.meshed, *_figures(f), tcp]
        if multi_namespace:
            cells.insert(0, r.namespace)
        if wide:
            read, write = f.byte_rates()
            cells += [_bytes_rate(read), _bytes_rate(write), r.cluster or "-"]
            if split:
                extra = [r.extra.get(k, "") for k in ("apex", "leaf", "weight")]
                cells[1 + multi_namespace : 1 + multi_namespace] = extra
        lines.append(cells)
    return table(columns, lines)


def render_authz(rows: Sequence[AuthzRow], output: str) -> str:
    """``viz authz`` output for ``rows``."""
    if output == "json":
        out = [
            {
                "route": r.route,
                "server": r.server,
                "authorization": r.authorization or None,
                "unauthorized_rps": _round(r.unauthorized),
                **_figures_json(r.figures),
            }
            for r in rows
        ]
        return json.dumps(out, indent=2) + "\n"
    if not rows:
        return "No traffic found.\n"
    lines = []
    for r in rows:
        if r.authorization:
            figures = _figures(r.figures)
        else:  # refused requests: nothing admitted, shown as Linkerd shows it
            figures = [percent(0.0), rps(0.0), millis(0.0), millis(0.0), millis(0.0)]
        lines.append([r.route, r.server, r.authorization, rps(r.unauthorized), *figures])
    return table(AUTHZ_COLUMNS, lines)


def render_edges(rows: Sequence[Edge], kind: str, output: str) -> str:
    """``viz edges`` output for ``rows``."""
    if output == "json":
        out = [
            {
                "src": e.src,
                "src_namespace": e.src_namespace,
                "dst": e.dst,
                "dst_namespace": e.dst_namespace,
                "client_id": e.client_id,
                "server_id": e.server_id,
                "no_tls_reason": e.msg,
                "src_cluster": e.src_cluster or None,
                "dst_cluster": e.dst_cluster or None,
                "kind": kind,
            }
            for e in rows
        ]
        return json.dumps(out, indent=2) + "\n"
    if not rows:
        return "No edges found.\n"
    columns = list(EDGES_COLUMNS)
    wide = output == "wide"
    if wide:
        columns += ["SRC_CLUSTER", "DST_CLUSTER"]
    lines = []
    for e in rows:
        dst = e.dst
        if e.dst_cluster and e.dst_cluster != e.src_cluster:
            dst = f"{dst}@{e.dst_cluster}"  # another cluster's: say which, even when not wide
        cells = [e.src, dst, e.src_namespace, e.dst_namespace, e.client_id, e.server_id, e.msg]
        if wide:
            cells += [e.src_cluster or "-", e.dst_cluster or "-"]
        lines.append(cells)
    return table(columns, lines)
