"""``isthmus component pause`` waits until SIGTERM and then exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

HANDLER_TIMEOUT = 10.0
"""Seconds the child may take to start and install its SIGTERM handler."""
EXIT_TIMEOUT = 5.0
"""Seconds it may take to exit once signalled."""


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_pause_sleeps_until_sigterm_and_exits_zero() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mesh.multicluster.pause import main; raise SystemExit(main([]))",
        ]
    )
    try:
        deadline = time.monotonic() + HANDLER_TIMEOUT
        while not _catches_sigterm(child.pid):
            assert child.poll() is None, f"pause exited early with {child.returncode}"
            assert time.monotonic() < deadline, "pause never installed a SIGTERM handler"
            time.sleep(0.05)
        assert child.poll() is None, "pause must keep running until signalled"
        child.send_signal(signal.SIGTERM)
        assert child.wait(EXIT_TIMEOUT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
