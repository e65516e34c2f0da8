"""Container processes: start one through the launcher, signal it, wait for it (IO).

A container is the process group of ``ip netns exec <netns> python launch.py SPEC``
(which execs the program, so the pid stays). Its stdout and stderr are appended to
its log file. Signals go to the whole group; when the leader exits whatever is left
of the group is killed, as a container runtime would tear down its cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.providers.netns.kubelet import launch
from harness.providers.netns.kubelet.launch import LaunchSpec

LAUNCHER = Path(launch.__file__)


@dataclass
class ContainerProcess:
    proc: asyncio.subprocess.Process
    started_at: float
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the container's process group (no error if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def wait(self) -> int:
        """Wait for the leader to exit, kill the rest of its group; return the returncode."""
        code = await self.proc.wait()
        self.signal(signal.SIGKILL)
        return code

    async def stop(self, grace: float, kill_wait: float) -> int | None:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL; the returncode (None if stuck)."""
        if self.running:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
        if self.running:
            self.signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), kill_wait)
        self.signal(signal.SIGKILL)
        return self.proc.returncode


def launcher_argv(python: str, netns: str, spec_path: Path) -> list[str]:
    """The command that starts a container in ``netns``."""
    return ["ip", "netns", "exec", netns, python, "-I", "-S", str(LAUNCHER), str(spec_path)]


async def start_container(
    python: str, netns: str, spec: LaunchSpec, spec_path: Path, log_path: Path
) -> ContainerProcess:
    """Write the launch spec and start the container process."""
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(spec.to_json())
    spec_path.chmod(0o600)
    Path(spec.scratch).mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *launcher_argv(python, netns, spec_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ContainerProcess(proc=proc, started_at=time.time(), log_path=log_path)
