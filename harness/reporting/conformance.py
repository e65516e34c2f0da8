"""The machine-readable conformance report (``conformance.yaml``).

Shape: an ``isthmus.io/v1alpha1`` ``ConformanceReport`` with the implementation under
test, the environment fingerprint, the conformance matrix (every CONF/SUB/SEC id
with the tests citing it, ``harness.reporting.matrix``), and per profile its tests and
a status summary.
Results are ``success``, ``failure`` or ``skipped``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from harness.reporting import matrix
from harness.reporting.records import PROFILES, RESULTS, TestResult

API_VERSION = "isthmus.io/v1alpha1"
KIND = "ConformanceReport"
__all__ = ["API_VERSION", "KIND", "RESULTS", "build", "by_profile", "dump", "entry_of", "summary"]


def by_profile(results: Iterable[TestResult]) -> dict[str, list[TestResult]]:
    """Conformance results grouped by profile: known profiles first, tests by node id."""
    groups: dict[str, list[TestResult]] = {}
    for r in sorted(results, key=lambda r: r.nodeid):
        if r.meta.get("conformance"):
            groups.setdefault(str(r.meta.get("profile", "other")), []).append(r)
    order = [p for p in PROFILES if p in groups] + sorted(set(groups) - set(PROFILES))
    return {p: groups[p] for p in order}


def summary(results: Sequence[TestResult]) -> dict[str, int]:
    counts = {name: 0 for name in RESULTS.values()}
    for r in results:
        counts[RESULTS[r.outcome]] += 1
    return {**counts, "total": len(results)}


def entry_of(r: TestResult) -> dict[str, Any]:
    return {
        "name": r.nodeid,
        "shortName": r.short_name,
        "description": r.meta.get("description", ""),
        "result": RESULTS[r.outcome],
        "durationSeconds": r.duration,
        "conf": list(r.meta.get("conf", [])),
        "features": list(r.meta.get("features", [])),
        "message": r.message,
        **({"diagnostics": r.diagnostics} if r.diagnostics else {}),
    }


def build(
    results: Iterable[TestResult],
    implementation: Mapping[str, str],
    environment: Mapping[str, Any],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """The report document as plain data."""
    results = list(results)
    profiles = by_profile(results)
    everything = [r for tests in profiles.values() for r in tests]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": dict(run),
        "implementation": dict(implementation),
        "environment": dict(environment),
        "summary": summary(everything),
        "conformanceMatrix": matrix.to_data(matrix.build(results), matrix.unknown_ids(results)),
        "profiles": [
            {"name": name, "summary": summary(tests), "tests": [entry_of(t) for t in tests]}
            for name, tests in profiles.items()
        ],
    }


def dump(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)
