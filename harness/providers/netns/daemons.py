"""Starting long-lived processes detached from the caller, with logs and pid files."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Daemons started by this process; kept so they are reaped, never garbage-collected alive.
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    netns: str | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``argv`` (inside ``netns`` if given) in its own session; return its pid.

    Output goes to ``log_dir/<name>.log`` and the pid to ``log_dir/<name>.pid``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    with open(log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    _children[proc.pid] = proc
    (log_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def log_tail(log_dir: Path, name: str, lines: int = 30) -> str:
    path = log_dir / f"{name}.log"
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def pids(log_dir: Path) -> list[int]:
    out = []
    for f in log_dir.glob("*.pid"):
        try:
            out.append(int(f.read_text().strip()))
        except ValueError:
            continue
    return out


def exited(pid: int) -> int | None:
    """The exit status if ``pid`` has exited, else None."""
    if pid in _children:
        return _children[pid].poll()
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if Path(f"/proc/{pid}").exists() else -1
    return os.waitstatus_to_exitcode(status) if done else None


def reap() -> None:
    """Collect the exit status of every daemon of ours that has exited."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]
