"""The isthmus adapter's viz verbs: argv, failures, and background runs of a real process."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.adapters import MeshError
from harness.adapters.isthmus import Completed, IsthmusAdapter
from harness.adapters.viz import VizRun
from harness.providers.base import Cluster

TARGET = Cluster(
    "target", "target", "target", Path("/k/target"), "target", "https://192.0.2.1:6443"
)


def _adapter(tmp_path: Path, answer: Completed, seen: list[Sequence[str]]) -> IsthmusAdapter:
    def runner(argv: Sequence[str], stdin: str | None, timeout: float) -> Completed:
        seen.append(argv)
        return answer

    return IsthmusAdapter(tmp_path, runner=runner, isthmus=("isthmus",), kubectl=lambda c: "k")


def test_viz_runs_the_verb_against_the_clusters_kubeconfig(tmp_path: Path) -> None:
    seen: list[Sequence[str]] = []
    adapter = _adapter(tmp_path, Completed((), 0, "NAME\n", ""), seen)
    out = adapter.viz(TARGET, "stat", "deploy", "-n", "ns", timeout=5)
    assert out.stdout == "NAME\n"
    assert list(seen[0]) == [
        "isthmus", "viz", "stat", "--kubeconfig", "/k/target", "--context", "target",
        "deploy", "-n", "ns",
    ]  # fmt: skip
    assert "viz" in adapter.features


def test_a_failing_viz_command_says_why(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, Completed((), 1, "", "Error: no pods"), [])
    with pytest.raises(MeshError, match="no pods"):
        adapter.viz(TARGET, "stat", "deploy", timeout=5)
    with pytest.raises(MeshError, match="needs a verb"):
        adapter.viz(TARGET, timeout=5)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_background_run_reports_when_its_window_opens() -> None:
    run = VizRun.start(
        _python(
            "import sys; print('viz: first scrape done', file=sys.stderr, flush=True);"
            "sys.stdin.read() if False else None; print('NAME')"
        )
    )
    run.wait_stderr("first scrape done", 10)
    out = run.finish(10)
    assert out.stdout == "NAME\n"
    assert "first scrape done" in out.stderr


def test_background_run_failures_and_overruns_are_errors() -> None:
    failed = VizRun.start(_python("import sys; print('boom', file=sys.stderr); sys.exit(3)"))
    with pytest.raises(MeshError, match="before printing"):
        failed.wait_stderr("first scrape done", 10)
    slow = VizRun.start(_python("import time; time.sleep(30)"))
    with pytest.raises(MeshError, match="did not finish"):
        slow.finish(0.5)
    assert slow.process.returncode is not None  # killed, not left running
    silent = VizRun.start(_python("import time; time.sleep(30)"))
    with pytest.raises(MeshError, match="did not print"):
        silent.wait_stderr("never", 0.5)
    assert silent.process.returncode is not None
