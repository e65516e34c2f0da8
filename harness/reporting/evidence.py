"""What a test saw and how long its steps took, kept on the test item for the reports.

Evidence is plain JSON data: anything recorded is normalised to JSON at once (unknown
types become their ``str``), and the amount one test can keep is bounded so a chatty
test cannot bloat the report. Nothing here touches the network or the clock beyond
``time.monotonic``.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

#: at most this many records per test; later ones are counted, not kept.
MAX_RECORDS = 200
#: a record whose JSON is longer than this is kept as a truncated string.
MAX_RECORD_CHARS = 20_000


def to_json(data: Any) -> Any:
    """``data`` as plain JSON values (tuples become lists, unknown objects their ``str``)."""
    return json.loads(json.dumps(data, default=str))


class Evidence:
    """Records (``kind`` + JSON data) and timed steps of one test."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._records: list[dict[str, Any]] = []
        self._steps: list[dict[str, Any]] = []
        self._depth = 0
        self._dropped = 0

    def record(self, kind: str, data: Any) -> None:
        """Keep ``data`` (JSON-able) as evidence of ``kind``, e.g. ``"traffic"``."""
        if len(self._records) >= MAX_RECORDS:
            self._dropped += 1
            return
        value = to_json(data)
        text = json.dumps(value)
        if len(text) > MAX_RECORD_CHARS:
            value = text[:MAX_RECORD_CHARS] + f"... ({len(text) - MAX_RECORD_CHARS} chars cut)"
        self._records.append({"kind": str(kind), "at": self._now(), "data": value})

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the enclosed block as step ``name``; a step that raises is marked failed."""
        entry: dict[str, Any] = {"name": str(name), "depth": self._depth, "start": self._now()}
        self._steps.append(entry)
        self._depth += 1
        started = time.monotonic()
        try:
            yield
        except BaseException as e:
            entry["error"] = f"{type(e).__name__}: {e}"[:500]
            raise
        finally:
            self._depth -= 1
            entry["seconds"] = round(time.monotonic() - started, 3)
            entry["ok"] = "error" not in entry

    def traffic(self, result: Mapping[str, Any], label: str) -> dict[str, Any]:
        """Record a compact summary of a load-client run (``LoadClient.run``) as ``label``."""
        summary = {"label": str(label), **summarise_traffic(result)}
        self.record("traffic", summary)
        return summary

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded so far, as JSON data."""
        return {
            "records": list(self._records),
            "steps": [dict(s) for s in self._steps],
            "dropped": self._dropped,
        }

    def _now(self) -> float:
        return round(time.monotonic() - self._started, 3)


def summarise_traffic(result: Mapping[str, Any]) -> dict[str, Any]:
    """Count, status and responder histograms and latency percentiles of a run's records."""
    records: Sequence[Mapping[str, Any]] = result.get("records") or []
    statuses: Counter[str] = Counter()
    responders: Counter[str] = Counter()
    identities: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    for r in records:
        status = r.get("status")
        statuses[str(status) if status is not None else "none"] += 1
        who = r.get("responder") or {}
        if who:
            responders[f"{who.get('cluster') or '?'}/{who.get('pod') or '?'}"] += 1
            identities[str(who.get("client_id") or "none")] += 1
        if r.get("error"):
            errors[str(r["error"])[:200]] += 1
        latency = r.get("latency_ms")
        if status is not None and isinstance(latency, int | float):
            latencies.append(float(latency))
    return {
        "count": len(records),
        "statuses": dict(sorted(statuses.items())),
        "responders": dict(sorted(responders.items())),
        "clientIdentities": dict(sorted(identities.items())),
        "errors": dict(errors.most_common(5)),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


EVIDENCE_KEY = pytest.StashKey[Evidence]()


def evidence_for(node: pytest.Item) -> Evidence:
    """The evidence of test ``node``, created on first use."""
    found = node.stash.get(EVIDENCE_KEY, None)
    if found is None:
        found = node.stash[EVIDENCE_KEY] = Evidence()
    return found
