"""The kubelet's record of one container: its current process and reported state."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from harness.providers.netns.kubelet.backoff import Backoff, exit_code_of, exit_reason
from harness.providers.netns.kubelet.containers import ContainerProcess
from harness.providers.netns.kubelet.images import image_id
from harness.providers.netns.kubelet.kobjects import Container
from harness.providers.netns.kubelet.naming import container_id
from harness.providers.netns.kubelet.podstatus import (
    ContainerState,
    ContainerView,
    Running,
    Terminated,
    rfc3339,
)
from harness.providers.netns.kubelet.probes import ExecContext

INIT, SIDECAR, MAIN = "init", "sidecar", "main"


@dataclass
class ContainerRuntime:
    spec: Container
    kind: str
    state: ContainerState
    backoff: Backoff
    last_state: Terminated | None = None
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str = ""
    process: ContainerProcess | None = None
    #: the image has no stand-in; the container waits for good
    unrunnable: bool = False
    #: set whenever ``started`` becomes true (sidecars gate the next init container)
    started_event: asyncio.Event = field(default_factory=asyncio.Event)
    probe_task: asyncio.Task[None] | None = None
    #: how to exec into the current instance (for exec probes and hooks)
    exec_ctx: ExecContext | None = None
    #: set once the first start attempt is over (started and postStart done, or failed)
    launched: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.spec.get("name", "")

    @property
    def is_init(self) -> bool:
        return self.kind in (INIT, SIDECAR)

    def view(self) -> ContainerView:
        return ContainerView(
            name=self.name,
            image=self.spec.get("image", ""),
            image_id=image_id(self.spec.get("image", "")),
            state=self.state,
            last_state=self.last_state,
            ready=self.ready,
            started=self.started,
            restart_count=self.restart_count,
            container_id=self.container_id,
        )

    def mark_running(self, process: ContainerProcess) -> None:
        self.process = process
        self.container_id = container_id(process.pid)
        self.state = Running(rfc3339(process.started_at))
        has_startup = "startupProbe" in self.spec
        self.set_started(not has_startup)
        self.ready = self.started and "readinessProbe" not in self.spec

    def set_started(self, started: bool) -> None:
        self.started = started
        if started:
            self.started_event.set()
        else:
            self.started_event.clear()

    def mark_exited(self, returncode: int, message: str = "") -> Terminated:
        """Record the exit of the current process; return its terminated state."""
        proc = self.process
        code, sig = exit_code_of(returncode)
        started = proc.started_at if proc else time.time()
        term = Terminated(
            exit_code=code,
            reason=exit_reason(code),
            started_at=rfc3339(started),
            finished_at=rfc3339(),
            container_id=self.container_id,
            message=message,
            signal=sig,
        )
        self.state = term
        self.ready = False
        self.set_started(False)
        self.process = None
        return term
