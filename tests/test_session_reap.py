"""Killed runs leave nothing behind: the reaper and ``down --all`` bring down every provider
state of a run (the teardown test's isolated cluster included), not only its main one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import __main__ as cli
from harness import session


class FakeProvider:
    downs: list[Path] = []

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def down(self) -> None:
        FakeProvider.downs.append(self.state_dir)


@pytest.fixture(autouse=True)
def fake_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeProvider.downs = []
    monkeypatch.setattr(session, "get_provider", lambda name, state: FakeProvider(state))


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def _run(root: Path, name: str, pid: int, *states: str, keep: bool = False) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / session.OWNER_FILE).write_text(json.dumps({"pid": pid, "keep": keep}))
    for state in states:
        (run / state).mkdir(parents=True, exist_ok=True)
        (run / state / session.PROVIDER_STATE).write_text(json.dumps({"rid": "abcd"}))
    return run


def test_the_reaper_brings_down_a_dead_runs_isolated_cluster_too(tmp_path: Path) -> None:
    """A run killed during the teardown test: both its clusters and the isolated one go."""
    dead = _run(tmp_path, "run-dead", _dead_pid(), "provider", "isolated")
    alive = _run(tmp_path, "run-alive", os.getpid(), "provider")
    kept = _run(tmp_path, "kept-x", _dead_pid(), "provider", keep=True)
    session.reap_stale_sessions(tmp_path, "netns", lambda message: None)
    assert FakeProvider.downs == [dead / "isolated", dead / "provider"]
    assert not dead.exists()
    assert alive.exists()
    assert kept.exists()


def test_a_run_killed_before_its_clusters_had_state_is_still_removed(tmp_path: Path) -> None:
    dead = _run(tmp_path, "run-early", _dead_pid())
    session.reap_stale_sessions(tmp_path, "netns", lambda message: None)
    assert FakeProvider.downs == []  # nothing was created: the provider dir does not exist
    assert not dead.exists()


def test_down_all_tears_down_every_run(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path, "run-a", os.getpid(), "provider", "isolated"),
        _run(tmp_path, "kept-b", os.getpid(), "provider", keep=True),
        _run(tmp_path, "manual", os.getpid()),
    ]
    (tmp_path / "manual" / session.PROVIDER_STATE).write_text("{}")
    result = CliRunner().invoke(cli.main, ["clusters", "down", "--all", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "tore down 3 run(s)" in result.output
    assert set(FakeProvider.downs) == {
        runs[0] / "isolated",
        runs[0] / "provider",
        runs[1] / "provider",
        runs[2],
    }
    assert not any(r.exists() for r in runs)
