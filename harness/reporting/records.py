"""Conformance records: what a test claims (its marker) and what became of it (its reports).

``meta_of`` reads the ``conformance`` marker on the worker that ran the test; the result
is JSON data carried to the controller on each report. ``TestResult`` folds a test's
setup/call/teardown reports into one outcome: any failed phase makes a failure, else a
skipped phase a skip, else a pass.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

PROFILES = ("substrate", "mesh", "multicluster", "security")
MARKER = "conformance"
MARKER_HELP = (
    "conformance(short_name, description, features, profile, conf): a conformance record; "
    f"profile is one of {', '.join(PROFILES)}; conf lists CONF-<n> references"
)
MARKER_KEYS = frozenset(["short_name", "description", "features", "profile", "conf"])
#: the report attribute that carries a test's record from a worker to the controller.
REPORT_ATTR = "isthmus_record"
#: characters of a failure or skip message kept in the reports (the HTML has the rest).
MAX_MESSAGE = 2000

Outcome = Literal["passed", "failed", "skipped"]
#: a test's outcome -> its result in the reports.
RESULTS = {"passed": "success", "failed": "failure", "skipped": "skipped"}


def marker_problems(item: pytest.Item) -> list[str]:
    """What is wrong with the ``conformance`` markers of ``item`` (empty when nothing)."""
    problems = []
    for mark in item.iter_markers(MARKER):
        unknown = sorted(set(mark.kwargs) - MARKER_KEYS)
        if unknown:
            problems.append(f"{item.nodeid}: unknown conformance fields {unknown}")
        profile = mark.kwargs.get("profile")
        if profile is not None and profile not in PROFILES:
            problems.append(
                f"{item.nodeid}: conformance profile {profile!r} is not one of {list(PROFILES)}"
            )
        for key in ("features", "conf"):
            value = mark.kwargs.get(key, [])
            if isinstance(value, str) or not isinstance(value, list | tuple):
                problems.append(f"{item.nodeid}: conformance {key} must be a list, not {value!r}")
    return problems


def meta_of(item: pytest.Item) -> dict[str, Any]:
    """The record of ``item``: short name, description, features, profile, CONF refs."""
    kwargs: dict[str, Any] = {}
    marked = False
    for mark in reversed(list(item.iter_markers(MARKER))):  # farthest first, closest wins
        marked = True
        kwargs.update(mark.kwargs)
        if mark.args:
            kwargs["short_name"] = mark.args[0]
    suite_dir = _suite_dir(item)
    function = getattr(item, "function", None)
    doc = inspect.getdoc(function) if function is not None else None
    return {
        "conformance": marked or suite_dir is not None,
        "shortName": str(kwargs.get("short_name") or item.name),
        "description": str(kwargs.get("description") or (doc or "").strip().split("\n")[0]),
        "features": [str(f) for f in kwargs.get("features") or []],
        "profile": str(kwargs.get("profile") or suite_dir or "other"),
        "conf": [str(c) for c in kwargs.get("conf") or []],
        "module": item.path.stem,
    }


def _suite_dir(item: pytest.Item) -> str | None:
    """The directory under ``suites/`` holding ``item`` ("other" for a file right in it)."""
    dirs = item.path.parts[:-1]
    if "suites" not in dirs:
        return None
    at = len(dirs) - 1 - dirs[::-1].index("suites")
    return dirs[at + 1] if at + 1 < len(dirs) else "other"


def _message(report: pytest.TestReport) -> str:
    """A one-line reason: the skip reason or the failure's crash message."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    lines = str(longrepr).strip().splitlines()
    return lines[-1] if lines else ""


@dataclass
class TestResult:
    """One test's outcome, folded from its phase reports (as received by the controller)."""

    nodeid: str
    meta: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, Any] | None = None
    diagnostics: str | None = None

    __test__ = False  # not a pytest test class, despite the name

    def add(self, report: pytest.TestReport, max_detail: int = 20_000) -> None:
        """Fold in one phase report."""
        carried: dict[str, Any] = getattr(report, REPORT_ATTR, None) or {}
        self.meta = carried.get("meta") or self.meta
        self.evidence = carried.get("evidence") or self.evidence
        self.diagnostics = carried.get("diagnostics") or self.diagnostics
        outcome = report.outcome
        if hasattr(report, "wasxfail") and report.skipped:
            self.messages[report.when] = f"xfail: {report.wasxfail}"
        elif report.failed or report.skipped:
            self.messages[report.when] = _message(report)
        if report.failed:
            self.details[report.when] = report.longreprtext[-max_detail:]
        self.phases[report.when] = outcome
        self.durations[report.when] = float(report.duration)

    @property
    def outcome(self) -> Outcome:
        values = self.phases.values()
        if "failed" in values:
            return "failed"
        if "skipped" in values:
            return "skipped"
        return "passed"

    @property
    def duration(self) -> float:
        return round(sum(self.durations.values()), 3)

    @property
    def message(self) -> str:
        """Why the test failed or skipped, naming the phase when it was not the call."""
        wanted = "failed" if self.outcome == "failed" else "skipped"
        for when in ("setup", "call", "teardown"):
            if self.phases.get(when) == wanted:
                text = self.messages.get(when, "")
                if wanted == "failed" and when != "call":
                    text = f"error in {when}: {text}"
                if len(text) > MAX_MESSAGE:
                    text = text[:MAX_MESSAGE] + "..."
                if wanted == "failed" and self.diagnostics:
                    text += f" (diagnostics: {self.diagnostics})"
                return text
        return ""

    @property
    def short_name(self) -> str:
        return str(self.meta.get("shortName") or self.nodeid.split("::")[-1])
