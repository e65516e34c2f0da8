"""What suites ask of a mesh's viz: its ``stat``, ``authz``, ``edges``, ``tap`` and ``top``.

A mesh with the ``viz`` feature runs Linkerd's viz verbs against one cluster and hands
back their output as text (suites parse tables and JSON themselves, and filter tap's
JSON with jq). ``start`` runs a verb in the background, so a suite can act while a
``stat`` window is open: ``VizRun.wait_stderr`` waits for a line the command prints
(the isthmus CLI's ``--verbose`` says when its first scrape is done), ``finish``
collects the output.

Rules: a command that fails raises ``MeshError`` with its argv and output; a command
that overruns its named timeout is killed and reported, never left running.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from harness.adapters.base import MeshError

if TYPE_CHECKING:
    from harness.providers.base import Cluster

__all__ = ["VizAdapter", "VizOutput", "VizRun"]

TIMEOUT_AFTER_EOF = 10.0
"""Seconds a process whose stderr has closed may take to exit."""


@dataclass(frozen=True)
class VizOutput:
    """A finished viz command."""

    argv: tuple[str, ...]
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"`{' '.join(self.argv)}`: stdout {self.stdout[-1500:]!r} stderr {self.stderr[-800:]!r}"
        )


class VizAdapter(Protocol):
    """The viz verbs of a mesh (feature ``viz``)."""

    def viz(self, cluster: Cluster, *args: str, timeout: float) -> VizOutput:
        """Run ``viz <args>`` against ``cluster``; its output once it exits 0."""
        ...

    def viz_start(self, cluster: Cluster, *args: str) -> VizRun:
        """Start ``viz <args>`` against ``cluster`` in the background."""
        ...


@dataclass
class VizRun:
    """A viz command running in the background; its stderr is read as it comes."""

    argv: tuple[str, ...]
    process: subprocess.Popen[str]
    _stderr: list[str] = field(default_factory=list)
    _stdout: list[str] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _done: bool = False

    @classmethod
    def start(cls, argv: Sequence[str]) -> VizRun:
        try:
            process = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        except OSError as e:
            raise MeshError(f"cannot run `{' '.join(argv)}`: {e}") from e
        run = cls(tuple(argv), process)
        for target in (run._read_stderr, run._read_stdout):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            run._readers.append(thread)
        return run

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self._stdout.extend(self.process.stdout)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self._stderr.append(line)
                self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def stderr(self) -> str:
        with self._changed:
            return "".join(self._stderr)

    def wait_stderr(self, text: str, timeout: float) -> None:
        """Return once stderr has a line containing ``text``; ``MeshError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self._stderr):
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    break
                self._changed.wait(left)
            else:
                return
            exited = self._done
        if exited:
            self.process.wait(timeout=TIMEOUT_AFTER_EOF)
            self._close()
            raise MeshError(
                f"`{' '.join(self.argv)}` exited {self.process.returncode} before printing "
                f"{text!r}: {self.stderr()[-1500:]}"
            )
        self.kill()
        raise MeshError(f"`{' '.join(self.argv)}` did not print {text!r} within {timeout:.0f}s")

    def finish(self, timeout: float) -> VizOutput:
        """The command's output once it exits 0; ``MeshError`` if it fails or overruns."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise MeshError(
                f"`{' '.join(self.argv)}` did not finish within {timeout:.0f}s"
            ) from None
        self._close()
        out = VizOutput(self.argv, "".join(self._stdout), self.stderr())
        if self.process.returncode != 0:
            raise MeshError(f"exited {self.process.returncode}: {out.describe()}")
        return out

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        for reader in self._readers:
            reader.join()  # the pipes reach EOF once the process has exited
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
