"""The conformance matrix: every id of the conformance list, the tests citing it, results.

A row per CONF/SUB/SEC id (``conformance_ids.yaml``), in list order. Its status folds
the results of the tests that cite the id: ``failure`` if any failed, else ``success``
if any passed, else ``skipped`` if every citing test skipped, else ``not covered``
(no test of the run cites it). Ids cited by tests but absent from the list are kept
apart as ``unknown`` so a typo in a marker shows up instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.reporting.conformance_ids import ConformanceId, load
from harness.reporting.records import RESULTS, TestResult

__all__ = ["NOT_COVERED", "Row", "build", "counts", "to_data", "unknown_ids"]

NOT_COVERED = "not covered"
STATUSES = ("success", "failure", "skipped", NOT_COVERED)


@dataclass(frozen=True)
class Citation:
    short_name: str
    nodeid: str
    result: str


@dataclass(frozen=True)
class Row:
    entry: ConformanceId
    tests: tuple[Citation, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        results = {t.result for t in self.tests}
        for status in ("failure", "success", "skipped"):
            if status in results:
                return status
        return NOT_COVERED


def _citations(results: Iterable[TestResult]) -> dict[str, list[Citation]]:
    cited: dict[str, list[Citation]] = {}
    for r in sorted(results, key=lambda r: r.nodeid):
        for ident in dict.fromkeys(str(c) for c in r.meta.get("conf", [])):
            cited.setdefault(ident, []).append(Citation(r.short_name, r.nodeid, RESULTS[r.outcome]))
    return cited


def build(results: Iterable[TestResult], ids: Sequence[ConformanceId] | None = None) -> list[Row]:
    """One row per id of the list (``ids``, default the repository's copy)."""
    cited = _citations(results)
    return [Row(e, tuple(cited.get(e.id, ()))) for e in (load() if ids is None else ids)]


def unknown_ids(
    results: Iterable[TestResult], ids: Sequence[ConformanceId] | None = None
) -> dict[str, list[str]]:
    """Ids cited by tests that the list does not have -> the node ids citing them."""
    known = {e.id for e in (load() if ids is None else ids)}
    return {
        ident: [c.nodeid for c in cs]
        for ident, cs in sorted(_citations(results).items())
        if ident not in known
    }


def counts(rows: Sequence[Row]) -> dict[str, int]:
    """How many ids have each status, plus ``total``."""
    out = {s: 0 for s in STATUSES}
    for row in rows:
        out[row.status] += 1
    return {**out, "total": len(rows)}


def to_data(rows: Sequence[Row], unknown: dict[str, list[str]]) -> dict[str, Any]:
    """The matrix as plain data for the YAML report."""
    return {
        "summary": counts(rows),
        "ids": [
            {
                "id": r.entry.id,
                "status": r.status,
                "tests": [{"name": t.nodeid, "result": t.result} for t in r.tests],
            }
            for r in rows
        ],
        **({"unknownIds": unknown} if unknown else {}),
    }
