"""The mesh installed once per state dir, whoever asks first (pytest workers, benchmarks).

``ensure_installed`` takes a file lock in ``workdir``, and installs (shared trust, then
the adapter's install) unless ``mesh.json`` there says the same adapter already runs on
those very clusters (by fingerprint: a cluster brought up anew under the same name gets
the mesh again); it returns the shared trust either way. A failed install is recorded
with the id of the run that tried, so the rest of that run fails fast while a later run
tries again. ``forget`` drops the record (after an uninstall).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from filelock import FileLock, Timeout

from harness.adapters.base import MeshError, SharedTrust
from harness.settings import TIMEOUTS

if TYPE_CHECKING:
    from harness.providers.base import Cluster

__all__ = [
    "INSTALL_LOCK",
    "STATE_FILE",
    "Installer",
    "ensure_installed",
    "fingerprint",
    "forget",
    "lock",
    "read",
]

STATE_FILE = "mesh.json"
#: seconds to wait for another process holding the install lock (it may be installing).
INSTALL_LOCK = TIMEOUTS.mesh_install_lock


class Installer(Protocol):
    """The part of a ``MeshAdapter`` installing needs."""

    name: str

    def create_trust(self, clusters: Sequence[Cluster], directory: Path) -> SharedTrust: ...

    def install(self, clusters: Sequence[Cluster], trust: SharedTrust) -> None: ...


def fingerprint(cluster: Cluster) -> str:
    """Changes when a cluster of that name is brought up anew (new addresses, run id, ...)."""
    text = json.dumps(cluster.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lock(workdir: Path) -> FileLock:
    workdir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(workdir / ".lock"))


def read(workdir: Path) -> dict[str, Any] | None:
    path = workdir / STATE_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _write(workdir: Path, data: dict[str, Any]) -> None:
    path = workdir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.rename(path)


def ensure_installed(
    adapter: Installer, clusters: Sequence[Cluster], workdir: Path, run_id: str
) -> SharedTrust:
    """The shared trust of the mesh on ``clusters``, installing it first if needed."""
    file_lock = lock(workdir)
    try:
        with file_lock.acquire(timeout=INSTALL_LOCK):
            return _ensure_locked(adapter, clusters, workdir, run_id)
    except Timeout:
        raise MeshError(
            f"waited {INSTALL_LOCK:.0f}s for the mesh install lock {file_lock.lock_file}"
        ) from None


def _ensure_locked(
    adapter: Installer, clusters: Sequence[Cluster], workdir: Path, run_id: str
) -> SharedTrust:
    state = read(workdir)
    wanted = {c.name: fingerprint(c) for c in clusters}
    if state and state.get("error"):
        if state.get("run") == run_id:
            raise MeshError(f"installing the mesh failed earlier in this run: {state['error']}")
    elif state and state.get("adapter") == adapter.name:
        installed = state.get("clusters") or {}
        if isinstance(installed, dict) and all(installed.get(n) == f for n, f in wanted.items()):
            return SharedTrust.from_dict(state["trust"])
    try:
        trust = adapter.create_trust(clusters, workdir / "trust")
        adapter.install(clusters, trust)
    except Exception as e:
        _write(workdir, {"adapter": adapter.name, "run": run_id, "error": str(e)[:4000]})
        raise
    _write(workdir, {"adapter": adapter.name, "clusters": wanted, "trust": trust.to_dict()})
    return trust


def forget(workdir: Path) -> None:
    """Drop the install record: whoever needs the mesh next installs it again."""
    with lock(workdir), contextlib.suppress(FileNotFoundError):
        (workdir / STATE_FILE).unlink()
