"""The failover controller's asyncio driver: watch events to the core, its commands to the API.

Rules: the one place with I/O and time. Watch events (TrafficSplits, Endpoints) and a
periodic ``Resync`` are fed to ``FailoverCore`` one at a time, in arrival order; its
commands run in order before the next event: patches are awaited and their outcome fed
back, Events are written best effort (a failure is logged, never fatal), metrics are set.
The run ends only when cancelled; the watches retry on their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import httpx2

from mesh.failover.admin import FailoverMetrics
from mesh.failover.core import (
    Command,
    EndpointsChanged,
    EndpointsListed,
    EndpointsRemoved,
    FailoverCore,
    Forget,
    Input,
    Observe,
    Patch,
    PatchDone,
    RecordEvent,
    Resync,
    SplitChanged,
    SplitRemoved,
    SplitsListed,
)
from mesh.failover.kube import EndpointsReadiness
from mesh.failover.model import Split
from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent
from mesh.k8s.watching import merge

__all__ = ["FailoverController", "FailoverSettings", "FailoverSource", "to_input"]

_log = logging.getLogger("mesh.failover")


@dataclass(frozen=True)
class FailoverSettings:
    """The controller's waits, in seconds."""

    resync_period: float = 30.0
    """Every split is decided again this often (retries patches that failed)."""
    api_timeout: float = 10.0
    """One API call (patch, Event) gives up after this."""


class FailoverSource(Protocol):
    """What the controller needs of the cluster (``KubeFailover``, or a fake in tests)."""

    def splits(self) -> AsyncIterator[WatchEvent[Split]]: ...

    def endpoints(self) -> AsyncIterator[WatchEvent[EndpointsReadiness]]: ...

    async def patch(self, patch: Patch) -> PatchDone: ...

    async def record_event(self, event: RecordEvent) -> None: ...


def to_input(event: WatchEvent[Split] | WatchEvent[EndpointsReadiness] | Resync) -> Input:
    """A watch event as the core's input."""
    match event:
        case Resync():
            return event
        case Listed(kind, objects) if kind is Split:
            return SplitsListed(tuple(o for o in objects if isinstance(o, Split)))
        case Listed(_, objects):
            return EndpointsListed(
                {o.key: o.ready for o in objects if isinstance(o, EndpointsReadiness)}
            )
        case Upserted(Split() as split):
            return SplitChanged(split)
        case Deleted(Split() as split):
            return SplitRemoved(split.key)
        case Upserted(EndpointsReadiness() as eps):
            return EndpointsChanged(eps.key, eps.ready)
        case Deleted(EndpointsReadiness() as eps):
            return EndpointsRemoved(eps.key)
    raise TypeError(f"unexpected watch event {event!r}")


class FailoverController:
    """Runs ``FailoverCore`` against a cluster."""

    def __init__(
        self,
        source: FailoverSource,
        metrics: FailoverMetrics,
        settings: FailoverSettings | None = None,
    ) -> None:
        self._source = source
        self._metrics = metrics
        self._settings = settings or FailoverSettings()
        self.core = FailoverCore()

    @property
    def ready(self) -> bool:
        return self.core.synced

    async def _ticks(self) -> AsyncIterator[Resync]:
        while True:
            await asyncio.sleep(self._settings.resync_period)
            yield Resync()

    async def run(self) -> None:
        """Watch and decide until cancelled."""
        streams: list[AsyncIterator[WatchEvent[Split] | WatchEvent[EndpointsReadiness] | Resync]]
        streams = [self._source.splits(), self._source.endpoints(), self._ticks()]
        async for event in merge(*streams):
            await self.step(to_input(event))

    async def step(self, event: Input) -> None:
        """Feed one input to the core and carry out everything it calls for."""
        received = time.monotonic()
        work: list[Command] = list(self.core.handle(event))
        while work:
            command = work.pop(0)
            match command:
                case Observe(split, state):
                    self._metrics.observe(split, state)
                case Forget(key):
                    self._metrics.forget(key)
                case Patch():
                    done = await self._patch(command)
                    if done.ok:
                        ms = (time.monotonic() - received) * 1000
                        weights = command.decision.weights or ()
                        self._metrics.patched(command.split, weights, command.decision.state, ms)
                        _log.info(
                            "%s: weights %s (%s)",
                            command.split.key,
                            list(weights),
                            command.decision.message,
                        )
                    else:
                        self._metrics.failed(done.conflict)
                        _log.warning("%s: patch failed: %s", command.split.key, done.error)
                    work[:0] = self.core.handle(done)
                case RecordEvent():
                    await self._record(command)

    # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that
    # arrives as the call completes, and the controller would then never stop.
    async def _patch(self, patch: Patch) -> PatchDone:
        try:
            async with asyncio.timeout(self._settings.api_timeout):
                return await self._source.patch(patch)
        except TimeoutError:
            return PatchDone(patch, ok=False, error=f"no answer in {self._settings.api_timeout}s")

    async def _record(self, event: RecordEvent) -> None:
        try:
            async with asyncio.timeout(self._settings.api_timeout):
                await self._source.record_event(event)
        except (httpx2.HTTPError, TimeoutError) as e:
            _log.warning("cannot record Event %s on %s: %s", event.reason, event.split.key, e)
