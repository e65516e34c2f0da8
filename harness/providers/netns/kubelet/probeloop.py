"""The probe schedule of one running container (startup, then readiness and liveness).

Startup gates the others; a failed startup or liveness verdict restarts the
container through ``restart``; readiness verdicts set ``ready``. Every failed probe
is reported as an ``Unhealthy`` event (the recorder drops repeats).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from harness.providers.netns.kubelet.containers import ContainerProcess
from harness.providers.netns.kubelet.events import WARNING
from harness.providers.netns.kubelet.kobjects import Probe
from harness.providers.netns.kubelet.probes import ExecContext, Prober
from harness.providers.netns.kubelet.probing import (
    ProbeKind,
    ProbeParams,
    ProbeTracker,
    probe_target,
)
from harness.providers.netns.kubelet.runtime import ContainerRuntime


@dataclass
class ProbeHooks:
    """How the probe loop reaches back into its pod worker."""

    notify: Callable[[], None]
    event: Callable[[str, str, str], None]
    restart: Callable[[str], Awaitable[None]]


async def _run(
    kind: ProbeKind,
    probe: Probe,
    rt: ContainerRuntime,
    proc: ContainerProcess,
    pod_ip: str,
    prober: Prober,
    exec_ctx: ExecContext,
    hooks: ProbeHooks,
    on_verdict: Callable[[bool], Awaitable[bool]],
) -> None:
    params = ProbeParams.of(probe)
    tracker = ProbeTracker(kind, params)
    target = probe_target(probe, rt.spec, pod_ip)
    await asyncio.sleep(params.initial_delay)
    while proc.running:
        ok, message = await prober.probe(target, params.timeout, exec_ctx)
        if not proc.running:
            return
        if not ok:
            hooks.event(WARNING, "Unhealthy", f"{kind.value} probe failed: {message}")
        verdict = tracker.observe(ok)
        if verdict is not None and await on_verdict(verdict):
            return
        await asyncio.sleep(params.period)


async def probe_container(
    rt: ContainerRuntime,
    proc: ContainerProcess,
    pod_ip: str,
    prober: Prober,
    exec_ctx: ExecContext,
    hooks: ProbeHooks,
) -> None:
    """Probe ``proc`` until it exits (or a verdict restarts it)."""
    spec = rt.spec
    startup = spec.get("startupProbe")
    if startup is not None:
        outcome: list[bool] = []

        async def on_startup(verdict: bool) -> bool:
            outcome.append(verdict)
            return True

        await _run(
            ProbeKind.STARTUP, startup, rt, proc, pod_ip, prober, exec_ctx, hooks, on_startup
        )
        if not outcome or not proc.running:
            return
        if not outcome[0]:
            await hooks.restart(f"Container {rt.name} failed startup probe, will be restarted")
            return
        rt.set_started(True)
        rt.ready = "readinessProbe" not in spec
        hooks.notify()

    async def on_readiness(verdict: bool) -> bool:
        rt.ready = verdict and proc.running
        hooks.notify()
        return False

    async def on_liveness(verdict: bool) -> bool:
        if not verdict:
            await hooks.restart(f"Container {rt.name} failed liveness probe, will be restarted")
            return True
        return False

    loops = []
    readiness = spec.get("readinessProbe")
    if readiness is not None:
        loops.append(
            _run(
                ProbeKind.READINESS,
                readiness,
                rt,
                proc,
                pod_ip,
                prober,
                exec_ctx,
                hooks,
                on_readiness,
            )
        )
    liveness = spec.get("livenessProbe")
    if liveness is not None:
        loops.append(
            _run(
                ProbeKind.LIVENESS, liveness, rt, proc, pod_ip, prober, exec_ctx, hooks, on_liveness
            )
        )
    if loops:
        await asyncio.gather(*loops)
