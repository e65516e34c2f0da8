"""Tap events as ``viz tap`` and ``viz top`` show them, sans I/O.

Rules:
- Events arrive as the proxies send them, already in Linkerd's ``-o json`` shape
  (``requestInitEvent``, ``responseInitEvent.httpStatus``, ``responseEndEvent``
  with ``source``/``destination`` and their ``metadata``); ``enrich`` adds the
  tapped pod's own metadata (``namespace``, ``pod``, ``deployment``, ...) to
  the side of the event that is that pod, and the other side's when its IP is a
  known pod's, as Linkerd's tap API does.
- ``-o json`` prints one compact object per line (a jq stream); the default
  prints Linkerd's one-line ``req``/``rsp``/``end`` form.
- ``Top`` aggregates events by source, destination, method and path: count,
  best/worst/last latency and success rate (a response is a failure when it
  ended in an error or its status is 5xx, as the metrics classify it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.viz.scrape import Workload

__all__ = ["Top", "enrich", "event_line", "event_text"]

Event = dict[str, Any]


def _peer_meta(w: Workload) -> dict[str, str]:
    meta = {"namespace": w.namespace, "pod": w.name, "serviceaccount": w.service_account}
    meta.update(w.owners)
    return meta


def _add(peer: Any, w: Workload) -> None:
    if isinstance(peer, dict):
        meta = peer.setdefault("metadata", {})
        if isinstance(meta, dict):
            for k, v in _peer_meta(w).items():
                meta.setdefault(k, v)


def enrich(event: Event, tapped: Workload, by_ip: Mapping[str, Workload] | None = None) -> Event:
    """``event`` with ``tapped``'s metadata on its side (source if outbound, else
    destination), and the other side's pod's metadata when ``by_ip`` knows its address."""
    mine, other = "source", "destination"
    if event.get("proxyDirection") != "OUTBOUND":
        mine, other = other, mine
    _add(event.get(mine), tapped)
    peer = event.get(other)
    if by_ip and isinstance(peer, dict) and str(peer.get("ip")) in by_ip:
        _add(peer, by_ip[str(peer["ip"])])
    return event


def event_line(event: Event) -> str:
    """``event`` as one compact JSON line (no newline)."""
    return json.dumps(event, separators=(",", ":"), sort_keys=False)


def _addr(peer: Any) -> str:
    if not isinstance(peer, dict):
        return "?"
    return f"{peer.get('ip', '?')}:{peer.get('port', '?')}"


def _micros(duration: Any) -> str:
    if not isinstance(duration, dict):
        return "?"
    total = int(duration.get("seconds", 0)) * 1_000_000 + int(duration.get("nanos", 0)) // 1000
    return f"{total}µs"


def event_text(event: Event) -> str:
    """``event`` as Linkerd's text line (``req id=… proxy=in src=… dst=… tls=…``)."""
    direction = "in " if event.get("proxyDirection") == "INBOUND" else "out"
    src, dst = event.get("source"), event.get("destination")
    meta = (src if direction == "in " else dst) or {}
    tls = meta.get("metadata", {}).get("tls", "") if isinstance(meta, dict) else ""
    head = f"proxy={direction} src={_addr(src)} dst={_addr(dst)} tls={tls or 'no_identity'}"
    if "requestInitEvent" in event:
        r = event["requestInitEvent"]
        stream = r.get("id", {}).get("stream", "?")
        return (
            f"req id=0:{stream} {head} :method={r.get('method', '')} "
            f":authority={r.get('authority', '')} :path={r.get('path', '')}"
        )
    if "responseInitEvent" in event:
        r = event["responseInitEvent"]
        stream = r.get("id", {}).get("stream", "?")
        return (
            f"rsp id=0:{stream} {head} :status={r.get('httpStatus', '')} "
            f"latency={_micros(r.get('sinceRequestInit'))}"
        )
    r = event.get("responseEndEvent", {})
    stream = r.get("id", {}).get("stream", "?")
    line = (
        f"end id=0:{stream} {head} duration={_micros(r.get('sinceResponseInit'))} "
        f"response-length={r.get('responseBytes', 0)}B"
    )
    if r.get("error"):
        line += f" error={r['error']}"
    return line


def _who(peer: Any) -> str:
    if not isinstance(peer, dict):
        return "?"
    meta = peer.get("metadata", {}) if isinstance(peer.get("metadata"), dict) else {}
    for key in ("deployment", "statefulset", "daemonset", "pod"):
        if meta.get(key):
            return f"{meta[key]}"
    return str(peer.get("ip", "?"))


@dataclass
class _Route:
    count: int = 0
    success: int = 0
    best: float | None = None
    worst: float | None = None
    last: float | None = None


@dataclass
class Top:
    """Requests tapped, by (source, destination, method, path)."""

    routes: dict[tuple[str, str, str, str], _Route] = field(default_factory=dict)
    _open: dict[tuple[int, int], tuple[tuple[str, str, str, str], int | None]] = field(
        default_factory=dict
    )

    def add(self, event: Event, pod_index: int = 0) -> None:
        """Account for one tap event (``pod_index`` tells apart the tapped pods' stream ids)."""
        if "requestInitEvent" in event:
            r = event["requestInitEvent"]
            key = (
                _who(event.get("source")),
                _who(event.get("destination")),
                str(r.get("method", "")),
                str(r.get("path", "")),
            )
            self._open[(pod_index, int(r.get("id", {}).get("stream", 0)))] = (key, None)
        elif "responseInitEvent" in event:
            r = event["responseInitEvent"]
            ident = (pod_index, int(r.get("id", {}).get("stream", 0)))
            if ident in self._open:
                self._open[ident] = (self._open[ident][0], int(r.get("httpStatus", 0)))
        elif "responseEndEvent" in event:
            r = event["responseEndEvent"]
            ident = (pod_index, int(r.get("id", {}).get("stream", 0)))
            opened = self._open.pop(ident, None)
            if opened is None:
                return
            key, status = opened
            d = r.get("sinceRequestInit", {})
            ms = (int(d.get("seconds", 0)) + int(d.get("nanos", 0)) / 1e9) * 1000.0
            route = self.routes.setdefault(key, _Route())
            route.count += 1
            if not r.get("error") and status is not None and status < 500:
                route.success += 1
            route.best = ms if route.best is None else min(route.best, ms)
            route.worst = ms if route.worst is None else max(route.worst, ms)
            route.last = ms

    def rows(self) -> list[list[str]]:
        """Rows for ``Source Destination Method Path Count Best Worst Last Success Rate``."""
        out = []
        for key, r in sorted(self.routes.items(), key=lambda kv: (-kv[1].count, kv[0])):
            rate = f"{100.0 * r.success / r.count:.2f}%" if r.count else "-"
            out.append(
                [
                    *key,
                    str(r.count),
                    *(f"{v:.0f}ms" if v is not None else "-" for v in (r.best, r.worst, r.last)),
                    rate,
                ]
            )
        return out
