"""Substrate: a run killed at any moment is cleaned up by the next one (issue 11, item 7).

Each case starts a real ``pytest`` run (``killable_run.py``) on its own one-cluster
topology (``TOPOLOGIES``: addresses of its own, so the cases may run side by side and
beside the run's main clusters) and its own state root, kills it with SIGKILL (no cleanup code
of it runs) at a given moment, shows that the kill really left things on the host (the
run's network namespaces, bridge or processes), then does what the next run does first
(``reap_stale_sessions`` on the state root, before it provisions) and checks that
nothing of the killed run is left: no namespace, link, route, iptables rule, mount,
process or state directory.

- ``mid-bring-up``: killed once the provider has recorded the run's resources and
  started creating them, before the cluster is up;
- ``mid-test``: killed while a test holds the run's cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.plugin import cluster_session
from harness.providers.netns.provider import leftovers
from harness.session import ENV_OWNER, PROVIDER_STATE, reap_stale_sessions
from harness.settings import TIMEOUTS

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
POLL = 0.2
ENV_STATE = "ISTHMUS_STATE_DIR"
TOPOLOGIES = {
    "mid-bring-up": ("172.30.7.0/24", "10.66.0.0/16", "10.67.0.0/16"),
    "mid-test": ("172.30.8.0/24", "10.64.0.0/16", "10.65.0.0/16"),
}
"""Underlay, pod and service CIDRs of each case's cluster."""


def _topology(path: Path, moment: str) -> Path:
    underlay, pods, services = TOPOLOGIES[moment]
    cluster = f"{{name: solo, domain: solo, pod_cidr: {pods}, service_cidr: {services}}}"
    path.write_text(
        f"name: killed-{moment}\nnetwork: flat\nunderlay: {underlay}\nclusters:\n- {cluster}\n"
    )
    return path


def _wait(
    what: str, ready: Callable[[], bool], within: float, child: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + within
    while not ready():
        if child.poll() is not None:
            out = log.read_text(errors="replace")
            raise AssertionError(
                f"the run to kill ended ({child.returncode}) before {what}:\n{out[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f}s")
        time.sleep(POLL)


def _rid(provider_state: Path) -> str | None:
    try:
        return str(json.loads((provider_state / PROVIDER_STATE).read_text())["rid"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.parametrize("moment", ["mid-bring-up", "mid-test"])
def test_a_killed_run_is_cleaned_up_by_the_next(
    pytestconfig: pytest.Config, tmp_path: Path, moment: str
) -> None:
    if cluster_session(pytestconfig).provider_name != "netns":
        pytest.skip("killed runs are reaped on the netns provider")
    root = tmp_path / "runs"
    run_dir = root / "run-killed"
    provider_state = run_dir / "provider"
    mark = tmp_path / "holding"
    env = {k: v for k, v in os.environ.items() if k not in (ENV_OWNER, ENV_STATE)}
    env["ISTHMUS_KILLABLE_MARK"] = str(mark)
    argv = [sys.executable, "-m", "pytest", str(HERE / "killable_run.py"), "-p", "no:cacheprovider",
            "--provider", "netns", "--topology", str(_topology(tmp_path / "killed.yaml", moment)),
            "--state-dir", str(run_dir), "-q"]  # fmt: skip
    log = tmp_path / "killed-run.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    rid: str | None = None
    try:
        if moment == "mid-bring-up":
            _wait(
                "the provider recording its resources",
                lambda: _rid(provider_state) is not None and any(run_dir.rglob("*.log")),
                TIMEOUTS.killable_up,
                child,
                log,
            )
        else:
            _wait("the test holding the cluster", mark.exists, TIMEOUTS.killable_up, child, log)
        rid = _rid(provider_state)
        assert rid is not None, f"no run id in {provider_state / PROVIDER_STATE}"
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # pytest and any helper it started itself
        child.wait(timeout=TIMEOUTS.teardown_grace * 4)
    left = leftovers(rid, provider_state)
    on_host = [x for x in left if not x.startswith("state dir ")]
    assert on_host, f"{moment}: the kill left nothing on the host; the test proves nothing"
    print(f"{moment}: the kill left {len(on_host)} things, e.g. {on_host[:4]}")
    reap_stale_sessions(root, "netns", lambda message: None)
    still = leftovers(rid, provider_state)
    assert still == [], (
        f"{moment}: after the next run's reaper, run {rid} still has on the host: {still} "
        f"(before reaping: {len(left)} things, e.g. {left[:5]})"
    )
    assert not run_dir.exists(), f"{moment}: the killed run's directory {run_dir} is still there"
