"""Container processes: start one through the launcher, signal it, wait for it (IO).

A container is the process group of ``ip netns exec <netns> python launch.py SPEC``
(which execs the program, so the pid stays). Its stdout and stderr are appended to
its log file. Signals go to the whole group; when the leader exits whatever is left
of the group is killed, as a container runtime would tear down its cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.providers.netns.kubelet import launch
from harness.providers.netns.kubelet.launch import LaunchSpec

LAUNCHER = Path(launch.__file__)
log = logging.getLogger(__name__)


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


def launcher_argv(
    python: str, netns: str, spec_path: Path, ready_fd: int | None = None
) -> list[str]:
    """The command that starts a container in ``netns``."""
    tail = [] if ready_fd is None else [str(ready_fd)]
    return ["ip", "netns", "exec", netns, python, "-I", "-S", str(LAUNCHER), str(spec_path), *tail]


async def start_container(
    python: str,
    netns: str,
    spec: LaunchSpec,
    spec_path: Path,
    log_path: Path,
    setup_timeout: float = 15.0,
    cgroup: Path | None = None,
    keep_stdin: bool = False,
) -> ContainerProcess:
    """Start the container process; return once its namespaces are set up (or it died).

    With ``cgroup``, the process is moved into it before it runs the program. With
    ``keep_stdin`` (the container's ``stdin: true``) its stdin is a pipe the kubelet
    holds open for ``kubectl attach``; otherwise it reads /dev/null.
    """
    log_fd = _prepare(spec, spec_path, log_path)
    ready_r, ready_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *launcher_argv(python, netns, spec_path, ready_w),
            stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(ready_w,),
        )
    finally:
        os.close(log_fd)
        os.close(ready_w)
    if cgroup is not None:
        try:
            (cgroup / "cgroup.procs").write_text(str(proc.pid))
        except OSError as e:
            log.warning("container pid %d not moved into %s: %s", proc.pid, cgroup, e)
    await _wait_ready(ready_r, setup_timeout)
    return ContainerProcess(proc=proc, started_at=time.time(), log_path=log_path)


async def _wait_ready(fd: int, timeout: float) -> None:
    """Wait for the launcher's ready byte or its exit (EOF), at most ``timeout`` s."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    os.set_blocking(fd, False)

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _prepare(spec: LaunchSpec, spec_path: Path, log_path: Path) -> int:
    """Write the spec, make the scratch and log dirs; return the log file opened to append."""
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(spec.to_json())
    spec_path.chmod(0o600)
    Path(spec.scratch).mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
