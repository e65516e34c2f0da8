"""Clusters provisioned once per pytest run and shared by every xdist worker.

The first process that needs clusters takes a file lock, provisions (or finds the
state file of a run already provisioned for this session) and releases the lock;
the others wait on the lock and read the state file. Only the controlling process
(the xdist controller, or pytest itself without xdist) tears down.

A run killed at any moment (SIGKILL, a CI time-out) is torn down by the next
run's reaper: every provider state inside the dead run's directory is brought
down (the run's clusters and any a test brought up beside them, such as the
teardown test's isolated cluster), deepest first, before the directory goes.
``tear_down_all`` does the same for every run, dead or alive (``down --all``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from harness.providers import Cluster, ProviderError, get_provider
from harness.settings import TIMEOUTS
from harness.topology import Topology

SESSION_FILE = "session.json"
OWNER_FILE = ".owner"  # {"pid": controlling pytest process, "keep": bool}
ENV_OWNER = "ISTHMUS_SESSION_OWNER_PID"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PROVIDER_STATE = "state.json"
"""The file a provider keeps in its state directory once it has created anything."""


def provider_states(run_dir: Path) -> list[Path]:
    """The provider state directories inside a run's directory, deepest first."""
    found = {p.parent for p in run_dir.rglob(PROVIDER_STATE)}
    found.add(run_dir / "provider")
    return sorted(found, key=lambda p: (-len(p.parts), str(p)))


def tear_down_run(run_dir: Path, provider_name: str, log: Callable[[str], None]) -> None:
    """Bring down every provider state of ``run_dir``, then remove the directory."""
    for state in provider_states(run_dir):
        if state.exists():
            log(f"tearing down {state}")
            get_provider(provider_name, state).down()
    shutil.rmtree(run_dir, ignore_errors=True)


def tear_down_all(root: Path, provider_name: str, log: Callable[[str], None]) -> list[Path]:
    """Tear down every run under ``root`` (kept ones and live ones too); the runs torn down."""
    runs = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    for run_dir in runs:
        tear_down_run(run_dir, provider_name, log)
    return runs


def reap_stale_sessions(root: Path, provider_name: str, log: Callable[[str], None]) -> None:
    """Tear down runs whose pytest process died without tearing down (and weren't kept)."""
    if not root.exists():
        return
    for owner in root.glob(f"*/{OWNER_FILE}"):
        try:
            data = json.loads(owner.read_text())
        except (OSError, ValueError):
            continue
        if data.get("keep") or _alive(int(data.get("pid", 0))):
            continue
        log(f"tearing down stale run {owner.parent} (its pytest process {data.get('pid')} is gone)")
        tear_down_run(owner.parent, provider_name, log)


def _echo(msg: str) -> None:
    print(f"[session] {msg}", file=sys.stderr, flush=True)


@dataclass
class ClusterSession:
    provider_name: str
    topology: Topology
    state_dir: Path
    keep: bool

    @property
    def _session_file(self) -> Path:
        return self.state_dir / SESSION_FILE

    def acquire(self) -> list[Cluster]:
        """The session's clusters, provisioning them if nobody has yet."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.state_dir / ".lock"))
        try:
            with lock.acquire(timeout=TIMEOUTS.provision_lock):
                return self._acquire_locked()
        except Timeout:
            raise ProviderError(
                f"waited {TIMEOUTS.provision_lock:.0f}s for the provisioning lock "
                f"{self.state_dir / '.lock'}"
            ) from None

    def _acquire_locked(self) -> list[Cluster]:
        if self._session_file.exists():
            data = json.loads(self._session_file.read_text())
            if data.get("error"):
                raise ProviderError(f"provisioning failed earlier in this run: {data['error']}")
            if data["topology"] == self.topology.name:
                return [Cluster.from_dict(c) for c in data["clusters"]]
            raise ProviderError(
                f"{self.state_dir} holds clusters of topology {data['topology']!r}, "
                f"not {self.topology.name!r}; tear them down first "
                f"(python -m harness clusters down --state-dir {self.state_dir})"
            )
        if self.provider_name == "netns":
            reap_stale_sessions(self.state_dir.parent, self.provider_name, _echo)
        # The controlling pytest process owns the run (xdist workers inherit its pid).
        owner = {"pid": int(os.environ.get(ENV_OWNER, os.getpid())), "keep": self.keep}
        (self.state_dir / OWNER_FILE).write_text(json.dumps(owner))
        provider = get_provider(self.provider_name, self.state_dir / "provider")
        started = time.monotonic()
        try:
            clusters = provider.up(self.topology)
        except Exception as e:
            self._write({"error": str(e)[:4000], "topology": self.topology.name})
            raise
        self._write(
            {
                "topology": self.topology.name,
                "provider": self.provider_name,
                "owner_pid": os.getpid(),
                "provision_seconds": round(time.monotonic() - started, 1),
                "clusters": [c.to_dict() for c in clusters],
            }
        )
        return clusters

    def _write(self, data: dict[str, object]) -> None:
        tmp = self._session_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.rename(self._session_file)

    def provisioned(self) -> dict[str, object] | None:
        if not self._session_file.exists():
            return None
        data: dict[str, object] = json.loads(self._session_file.read_text())
        return data

    def release(self) -> None:
        """Tear down (unless kept); called once, by the controlling process."""
        if self.keep:
            return
        get_provider(self.provider_name, self.state_dir / "provider").down()
        self._session_file.unlink(missing_ok=True)
        (self.state_dir / ".lock").unlink(missing_ok=True)
        (self.state_dir / OWNER_FILE).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()
