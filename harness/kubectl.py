"""The pinned ``kubectl`` of a cluster, run as a user would run it.

Suites that check what users see (``exec``, ``port-forward``, ``logs -f``) drive the
real client: the upstream kubectl built for the cluster's Kubernetes version (from
the build cache), else ``kubectl`` on PATH. Every command names the cluster's
kubeconfig and context explicitly; every run has a timeout; a long-running command
(``port-forward``, ``logs -f``) is a :class:`Background` that is always stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import upstream
from harness.providers import Cluster

#: SIGINT to a background kubectl, then SIGKILL after this many seconds.
STOP_GRACE = 5.0


class KubectlNotFound(Exception):
    """Neither a cached upstream kubectl nor one on PATH."""


def kubectl_path(version: str) -> Path:
    """The cached upstream kubectl for ``version``, else the one on PATH."""
    if version:
        with contextlib.suppress(FileNotFoundError, KeyError):
            return upstream.binaries(version).path("kubectl")
    found = shutil.which("kubectl")
    if found is None:
        raise KubectlNotFound(
            f"no kubectl: build it (python -m harness build --k8s-version {version or '<v>'}) "
            "or put one on PATH"
        )
    return Path(found)


@dataclass
class Background:
    """A kubectl command left running; its output is collected as it comes."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    _out: bytearray = field(default_factory=bytearray)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Condition = field(init=False)
    _reader: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._changed:
                self._out += chunk
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._lock:
            return self._out.decode(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """True once ``text`` appeared in the output within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(
                lambda: text.encode() in self._out or self.proc.poll() is not None, timeout
            ) and (text.encode() in self._out)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(STOP_GRACE)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass(frozen=True)
class Kubectl:
    """kubectl aimed at one cluster."""

    cluster: Cluster
    path: Path

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> Kubectl:
        return cls(cluster, kubectl_path(cluster.version))

    def argv(self, *args: str) -> list[str]:
        target = ["--kubeconfig", str(self.cluster.kubeconfig), "--context", self.cluster.context]
        return [str(self.path), *target, *args]

    def run(
        self, *args: str, timeout: float, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run to completion (stdout and stderr apart); raises TimeoutExpired when stuck."""
        return subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "KUBECTL_INTERACTIVE_DELETE": "false"},
        )

    @contextlib.contextmanager
    def background(self, *args: str) -> Iterator[Background]:
        """Start a long-running command; it is interrupted when the block ends."""
        argv = self.argv(*args)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        bg = Background(argv, proc)
        try:
            yield bg
        finally:
            bg.stop()


@dataclass(frozen=True)
class TerminalRun:
    """What a command run on a terminal printed, and how it exited."""

    output: str
    returncode: int


def run_in_terminal(
    argv: list[str], keystrokes: list[tuple[str, bytes]], size: tuple[int, int], timeout: float
) -> TerminalRun:
    """Run ``argv`` with a pty of ``size`` (columns, rows) as its terminal.

    ``keystrokes`` are (wait-for-text, bytes-to-type) pairs: each is typed once its text
    has appeared on the terminal ("" types at once). Raises TimeoutError when the
    command has not exited ``timeout`` seconds after the start.
    """
    master, slave = os.openpty()
    columns, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, close_fds=True
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    pending = list(keystrokes)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{argv} still running after {timeout:g}s; saw {bytes(out)!r}")
            while pending and pending[0][0].encode() in out:
                os.write(master, pending.pop(0)[1])
            ready, _, _ = select.select([master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command closed the terminal
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(max(0.1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return TerminalRun(out.decode(errors="replace"), code)
