"""One pod, from binding to deletion: sandbox, volumes, containers, status (IO).

A :class:`PodWorker` owns everything of one pod. Its run task prepares the sandbox
and volumes (retrying while a source is missing), runs init containers one by one
(sidecar init containers keep running), then supervises the containers with their
restart policy and back-off; its status task patches the pod status whenever the
computed status changes. :meth:`PodWorker.terminate` stops it all — SIGTERM, grace,
SIGKILL, sandbox teardown — and optionally deletes the pod (grace 0, uid
precondition). Decisions are delegated to the pure modules; this one sequences them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, cast

from harness.providers.netns.kubelet.api import ApiUnavailable
from harness.providers.netns.kubelet.backoff import (
    ALWAYS,
    NEVER,
    Backoff,
    init_restart_policy,
    should_restart,
)
from harness.providers.netns.kubelet.cgroups import NOT_ENFORCED_REASON, place
from harness.providers.netns.kubelet.containers import ContainerProcess, start_container
from harness.providers.netns.kubelet.context import NodeContext
from harness.providers.netns.kubelet.envvars import EnvInputs, MissingReference, resolve_env
from harness.providers.netns.kubelet.events import NORMAL, WARNING, container_field_path
from harness.providers.netns.kubelet.images import NOT_RUNNABLE_REASON, ImageNotRunnable
from harness.providers.netns.kubelet.ipam import AddressesExhausted
from harness.providers.netns.kubelet.kobjects import JsonDict, Pod, PodStatus
from harness.providers.netns.kubelet.launch import Mount
from harness.providers.netns.kubelet.launchplan import build_launch_spec
from harness.providers.netns.kubelet.naming import (
    log_path,
    node_veth,
    pod_dir,
    pod_netns,
    scratch_dir,
)
from harness.providers.netns.kubelet.podfiles import hosts_file, resolv_conf
from harness.providers.netns.kubelet.podstatus import (
    TERMINAL,
    PodView,
    Terminated,
    Waiting,
    compute_phase,
    compute_status,
    gate_status_of,
    rfc3339,
)
from harness.providers.netns.kubelet.probeloop import ProbeHooks, probe_container
from harness.providers.netns.kubelet.probes import ExecContext
from harness.providers.netns.kubelet.probing import hook_target
from harness.providers.netns.kubelet.runtime import INIT, MAIN, SIDECAR, ContainerRuntime
from harness.providers.netns.kubelet.sandbox import (
    Sandbox,
    SandboxRecord,
    create_pod_network,
    remove_etc_files,
    remove_pod_network,
    write_etc_files,
)
from harness.providers.netns.kubelet.volumeplan import container_mounts
from harness.providers.netns.kubelet.volumes import VolumeManager, is_file
from harness.sh import CommandError

log = logging.getLogger(__name__)

_WAITING_BEFORE_START = ("ContainerCreating", "PodInitializing")


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Pod) -> None:
        self.ctx = ctx
        self.cfg = ctx.config
        self.timings = ctx.config.timings
        self.pod = pod
        meta = pod.get("metadata", {})
        self.uid = meta.get("uid", "")
        self.namespace = meta.get("namespace", "")
        self.name = meta.get("name", "")
        spec = pod.get("spec", {})
        status = pod.get("status") or {}
        self.restart_policy = spec.get("restartPolicy") or ALWAYS
        self.host_network = spec.get("hostNetwork", False)
        counts = {
            cs.get("name", ""): int(cs.get("restartCount", 0))
            for cs in [
                *(status.get("containerStatuses") or []),
                *(status.get("initContainerStatuses") or []),
            ]
        }
        inits = spec.get("initContainers") or []
        self.init = [
            ContainerRuntime(
                c,
                SIDECAR if c.get("restartPolicy") == ALWAYS else INIT,
                Waiting("PodInitializing"),
                Backoff(self.timings.backoff),
                restart_count=counts.get(c.get("name", ""), 0),
            )
            for c in inits
        ]
        self.main = [
            ContainerRuntime(
                c,
                MAIN,
                Waiting("PodInitializing" if inits else "ContainerCreating"),
                Backoff(self.timings.backoff),
                restart_count=counts.get(c.get("name", ""), 0),
            )
            for c in spec.get("containers") or []
        ]
        self.dir = pod_dir(self.cfg.state_dir, self.uid)
        self.volumes = VolumeManager(ctx.api, pod, self.dir / "volumes", self.timings)
        self.sandbox: Sandbox | None = None
        self.pod_ip = ""
        self.initialized = not self.init
        self.init_failed = False
        phase = status.get("phase", "")
        self.terminal_phase: str | None = phase if phase in TERMINAL else None
        self.start_time = status.get("startTime") or rfc3339()
        self.stopping = False
        self.terminating = False
        self.done = asyncio.Event()
        self._stopped = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._run_task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._last_status: JsonDict | None = None
        self._extra_mounts: list[Mount] = []

    # -- public surface -------------------------------------------------------------

    def start(self) -> None:
        """Begin running the pod (nothing to run for a pod already in a terminal phase)."""
        if self.terminal_phase is None:
            self._run_task = asyncio.get_running_loop().create_task(self._run())
            self._status_task = asyncio.get_running_loop().create_task(self._status_loop())
            self.notify()

    def update(self, pod: Pod) -> None:
        self.pod = pod
        self.volumes.pod = pod

    @property
    def deletion_requested(self) -> bool:
        return "deletionTimestamp" in self.pod.get("metadata", {})

    def grace_period(self) -> float:
        meta = self.pod.get("metadata", {})
        spec = self.pod.get("spec", {})
        grace = meta.get(
            "deletionGracePeriodSeconds",
            spec.get("terminationGracePeriodSeconds", self.timings.default_grace),
        )
        return float(grace)

    def notify(self) -> None:
        self._changed.set()

    def container(self, name: str) -> ContainerRuntime | None:
        return next((rt for rt in [*self.main, *self.init] if rt.name == name), None)

    def log_file(self, container: str, previous: bool) -> Path | None:
        rt = self.container(container)
        if rt is None:
            return None
        count = rt.restart_count - (1 if previous else 0)
        if count < 0:
            return None
        path = log_path(self.cfg.state_dir, self.uid, container, count)
        return path if path.exists() else None

    def view(self) -> PodView:
        return PodView(
            containers=[rt.view() for rt in self.main],
            init_containers=[rt.view() for rt in self.init],
            restart_policy=self.restart_policy,
            pod_ip=self.pod_ip,
            host_ip=self.cfg.node_ip,
            start_time=self.start_time,
            sandbox_ready=self.sandbox is not None,
            initialized=self.initialized,
            init_failed=self.init_failed,
            terminal_phase=self.terminal_phase,
            readiness_gates=[
                g["conditionType"] for g in self.pod.get("spec", {}).get("readinessGates") or []
            ],
            gate_status=gate_status_of(self.pod.get("status") or {}),
            sidecars=frozenset(rt.name for rt in self.init if rt.kind == SIDECAR),
        )

    async def terminate(self, grace: float, delete: bool) -> None:
        """Stop every container within ``grace`` seconds, tear down, maybe delete the pod."""
        if self.terminating:
            await self.done.wait()
            return
        self.terminating = self.stopping = True
        self._stopped.set()
        try:
            deadline = time.monotonic() + grace
            await self._stop_containers(self.main, grace)
            await self._stop_containers(self.init, max(1.0, deadline - time.monotonic()))
            await self._cancel_tasks()
            await self._teardown()
            if self.ctx.cgroups is not None:
                self.ctx.cgroups.remove(self.uid)
            shutil.rmtree(self.dir, ignore_errors=True)
            if delete:
                await self._delete_from_api()
        finally:
            if self._status_task is not None:
                self._status_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._status_task
            self.done.set()

    # -- helpers --------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _emit(
        self, type_: str, reason: str, message: str, rt: ContainerRuntime | None = None
    ) -> None:
        path = container_field_path(rt.name, rt.is_init) if rt else ""
        self.ctx.events.emit(self.pod, type_, reason, message, path)

    def _set_waiting(self, message: str, reason: str = "ContainerCreating") -> None:
        """Set the waiting state of every container that has not started yet."""
        for rt in [*self.init, *self.main]:
            if isinstance(rt.state, Waiting) and rt.state.reason in _WAITING_BEFORE_START:
                rt.state = Waiting(reason, message)
        self.notify()

    async def _stop_containers(self, runtimes: list[ContainerRuntime], grace: float) -> None:
        procs = [(rt, rt.process) for rt in runtimes if rt.process is not None]
        for rt, _ in procs:
            self._emit(NORMAL, "Killing", f"Stopping container {rt.name}", rt)
        await asyncio.gather(*(self._stop_one(rt, p, grace) for rt, p in procs))

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in [self._run_task, *self._tasks] if t is not None]
        for rt in [*self.init, *self.main]:
            if rt.probe_task is not None:
                tasks.append(rt.probe_task)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # -- the run --------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._prepare()
            if await self._run_init():
                await self._run_main()
            if not self.stopping:
                await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("%s/%s: pod worker failed", self.namespace, self.name)
            self._emit(WARNING, "Failed", f"kubelet error: {e}")
            self._set_waiting(f"kubelet error: {e}")

    async def _prepare(self) -> None:
        while not self.stopping:
            try:
                await self._create_sandbox()
                break
            except (CommandError, OSError, AddressesExhausted) as e:
                msg = f"Failed to create pod sandbox: {e}"
                log.warning("%s/%s: %s", self.namespace, self.name, msg)
                self._emit(WARNING, "FailedCreatePodSandBox", msg)
                self._set_waiting(msg)
                await asyncio.sleep(self.timings.retry)
        self.volumes.pod_ip, self.volumes.host_ip = self.pod_ip, self.cfg.node_ip
        while not self.stopping:
            try:
                self.volumes.write(await self.volumes.fetch_inputs())
                break
            except (MissingReference, ApiUnavailable) as e:
                self._emit(WARNING, "FailedMount", str(e))
                self._set_waiting(str(e))
                await asyncio.sleep(self.timings.volume_retry)
            except Exception as e:
                log.exception("%s/%s: volume setup failed", self.namespace, self.name)
                self._emit(WARNING, "FailedMount", f"MountVolume.SetUp failed: {e}")
                self._set_waiting(f"MountVolume.SetUp failed: {e}")
                await asyncio.sleep(self.timings.volume_retry)
        self._set_waiting("", "PodInitializing" if self.init else "ContainerCreating")
        self._spawn(self.volumes.keep_fresh())

    async def _create_sandbox(self) -> None:
        spec = self.pod.get("spec", {})
        resolv = resolv_conf(self.pod, self.cfg.cluster_domain, self.cfg.dns_ip)
        if self.host_network:
            self.sandbox = Sandbox(self.cfg.node_netns, self.cfg.node_ip, host_network=True)
            if resolv is not None and spec.get("dnsPolicy") in ("ClusterFirstWithHostNet", "None"):
                etc = self.dir / "etc"
                etc.mkdir(parents=True, exist_ok=True)
                (etc / "resolv.conf").write_text(resolv)
                self._extra_mounts = [
                    Mount(str(etc / "resolv.conf"), "/etc/resolv.conf", readonly=True, kind="file")
                ]
        else:
            ip = self.ctx.ipam.allocate(self.uid)
            sandbox = Sandbox(pod_netns(self.cfg.netns_prefix, self.uid), ip, node_veth(self.uid))
            self.ctx.records.save(
                SandboxRecord(self.uid, self.namespace, self.name, sandbox.netns, ip, sandbox.veth)
            )
            await create_pod_network(self.cfg.node_netns, sandbox)
            write_etc_files(
                self.cfg.etc_netns / sandbox.netns,
                {
                    "resolv.conf": resolv,
                    "hosts": hosts_file(self.pod, ip, self.cfg.cluster_domain),
                },
            )
            self.sandbox = sandbox
        self.pod_ip = self.sandbox.ip
        self.notify()

    async def _start(self, rt: ContainerRuntime) -> ContainerProcess | None:
        """Start one instance of ``rt``; None (with the reason in its state) if it cannot."""
        assert self.sandbox is not None
        try:
            inputs = await self.volumes.fetch_inputs()
            env = resolve_env(
                self.pod,
                rt.spec,
                EnvInputs(
                    configmaps=inputs.configmaps,
                    secrets=inputs.secrets,
                    pod_ip=self.pod_ip,
                    host_ip=self.cfg.node_ip,
                    service_env=await self.ctx.service_env(),
                ),
            )
            mounts = container_mounts(
                self.pod,
                rt.spec,
                self.volumes.path,
                is_file,
                env,
                self.volumes.api_object_volumes(),
            )
            launch = build_launch_spec(
                self.pod,
                rt.spec,
                env,
                [*mounts, *self._extra_mounts],
                scratch=scratch_dir(self.cfg.state_dir, self.uid, rt.name, rt.restart_count),
                bin_dir=self.cfg.bin_dir,
                node_name=self.cfg.node_name,
                is_executable=_is_executable,
                interpreter=self.cfg.python,
                roots=self.ctx.images,
            )
        except ImageNotRunnable as e:
            rt.unrunnable = True
            rt.state = Waiting(NOT_RUNNABLE_REASON, str(e))
            self._emit(WARNING, "Failed", str(e), rt)
            self.notify()
            return None
        except MissingReference as e:
            rt.state = Waiting("CreateContainerConfigError", str(e))
            self._emit(WARNING, "Failed", f"Error: {e}", rt)
            self.notify()
            return None
        except ApiUnavailable as e:
            log.warning("%s/%s: cannot start %s yet: %s", self.namespace, self.name, rt.name, e)
            return None
        image = rt.spec.get("image", "")
        ctx = self.ctx
        placed = place(ctx.cgroups, ctx.cgroups_problem, self.uid, rt.spec, rt.restart_count)
        if placed.warning and rt.restart_count == 0:
            self._emit(WARNING, NOT_ENFORCED_REASON, placed.warning, rt)
        self._emit(NORMAL, "Pulled", f'Container image "{image}" already present on machine', rt)
        proc = await start_container(
            self.cfg.python,
            self.sandbox.netns,
            launch,
            self.dir / "specs" / f"{rt.name}-{rt.restart_count}.json",
            log_path(self.cfg.state_dir, self.uid, rt.name, rt.restart_count),
            cgroup=placed.cgroup,
            keep_stdin=bool(rt.spec.get("stdin")),
        )
        self._emit(NORMAL, "Created", f"Created container: {rt.name}", rt)
        self._emit(NORMAL, "Started", f"Started container {rt.name}", rt)
        rt.mark_running(proc)
        rt.exec_ctx = ExecContext(proc.pid, launch.env, launch.uid, launch.gid)
        self.notify()
        post_start = (rt.spec.get("lifecycle") or {}).get("postStart")
        if post_start is not None:
            ok, message = await self.ctx.prober.probe(
                hook_target(post_start, rt.spec, self.pod_ip),
                self.timings.post_start_timeout,
                rt.exec_ctx,
            )
            if not ok and proc.running:
                self._emit(WARNING, "FailedPostStartHook", f"PostStartHook failed: {message}", rt)
                await self._stop_one(rt, proc, self.grace_period(), pre_stop=False)
                return proc
        hooks = ProbeHooks(
            notify=self.notify,
            event=lambda t, r, m: self._emit(t, r, m, rt),
            restart=lambda why: self._kill_for_restart(rt, proc, why),
        )
        rt.probe_task = self._spawn(
            probe_container(rt, proc, self.pod_ip, self.ctx.prober, rt.exec_ctx, hooks)
        )
        return proc

    async def _stop_one(
        self, rt: ContainerRuntime, proc: ContainerProcess, grace: float, pre_stop: bool = True
    ) -> None:
        """Run the preStop hook (if any) and stop ``proc``, all within ``grace`` seconds."""
        deadline = time.monotonic() + grace
        hook = (rt.spec.get("lifecycle") or {}).get("preStop") if pre_stop else None
        if hook is not None and rt.exec_ctx is not None and proc.running:
            ok, message = await self.ctx.prober.probe(
                hook_target(hook, rt.spec, self.pod_ip), max(1.0, grace), rt.exec_ctx
            )
            if not ok:
                self._emit(WARNING, "FailedPreStopHook", f"PreStopHook failed: {message}", rt)
        await proc.stop(max(0.1, deadline - time.monotonic()), self.timings.kill_wait)

    async def _kill_for_restart(
        self, rt: ContainerRuntime, proc: ContainerProcess, why: str
    ) -> None:
        self._emit(NORMAL, "Killing", why, rt)
        await self._stop_one(rt, proc, self.grace_period())

    async def _run_once(self, rt: ContainerRuntime) -> tuple[Terminated, float] | None:
        """Run one instance to its exit: (terminated state, seconds it ran); None if stopping."""
        while True:
            if self.stopping:
                return None
            proc = await self._start(rt)
            rt.launched.set()
            if proc is not None:
                break
            if rt.unrunnable:
                await self._stopped.wait()
                return None
            await asyncio.sleep(self.timings.volume_retry)
        code = await proc.wait()
        if self.ctx.cgroups is not None:
            self.ctx.cgroups.remove(self.uid, f"{rt.name}-{rt.restart_count}")
        if rt.probe_task is not None and rt.probe_task is not asyncio.current_task():
            rt.probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rt.probe_task
            rt.probe_task = None
        term = rt.mark_exited(code)
        self.notify()
        return term, time.time() - proc.started_at

    async def _back_off(self, rt: ContainerRuntime, term: Terminated, ran_for: float) -> None:
        delay = rt.backoff.on_exit(ran_for)
        rt.last_state = term
        who = f"{self.name}_{self.namespace}({self.uid})"
        rt.state = Waiting(
            "CrashLoopBackOff",
            f"back-off {delay:g}s restarting failed container={rt.name} pod={who}",
        )
        self._emit(
            WARNING, "BackOff", f"Back-off restarting failed container {rt.name} in pod {who}", rt
        )
        self.notify()
        await asyncio.sleep(delay)
        rt.restart_count += 1

    async def _supervise(self, rt: ContainerRuntime, policy: str) -> None:
        while not self.stopping:
            result = await self._run_once(rt)
            if result is None or self.stopping:
                return
            term, ran_for = result
            if not should_restart(policy, term.exit_code):
                return
            await self._back_off(rt, term, ran_for)

    async def _run_init(self) -> bool:
        """Run the init containers; True when the pod may start its containers."""
        for rt in self.init:
            if rt.kind == SIDECAR:
                self._spawn(self._supervise(rt, ALWAYS))
                await self._first_of(rt.launched.wait())
                await self._first_of(rt.started_event.wait())
                if self.stopping:
                    return False
                continue
            policy = init_restart_policy(self.restart_policy)
            while True:
                result = await self._run_once(rt)
                if result is None:
                    return False
                term, ran_for = result
                if term.exit_code == 0:
                    rt.ready = True
                    break
                if policy == NEVER:
                    self.init_failed = True
                    self.notify()
                    return False
                await self._back_off(rt, term, ran_for)
        self.initialized = True
        for rt in self.main:
            rt.state = Waiting("ContainerCreating")
        self.notify()
        return True

    async def _run_main(self) -> None:
        """Start the containers in order (each after the previous one's postStart hook)."""
        tasks = []
        for rt in self.main:
            task = self._spawn(self._supervise(rt, self.restart_policy))
            tasks.append(task)
            await self._first_of(rt.launched.wait(), task)
            if self.stopping:
                return
        if tasks:
            await asyncio.wait(tasks)

    async def _first_of(self, *aws: Awaitable[Any]) -> None:
        """Wait until any of ``aws`` is done or the pod is stopping."""
        futures = {asyncio.ensure_future(a) for a in (*aws, self._stopped.wait())}
        _, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            if f not in self._tasks:
                f.cancel()

    async def _finish(self) -> None:
        """Every container is done for good: settle the phase and free the sandbox."""
        self.terminal_phase = compute_phase(self.view())
        if self.terminal_phase not in TERMINAL:
            self.terminal_phase = "Failed" if self.init_failed else "Succeeded"
        await self._stop_containers(self.init, self.grace_period())
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self._teardown()
        self.notify()

    async def _teardown(self) -> None:
        if self.host_network:
            return
        netns = pod_netns(self.cfg.netns_prefix, self.uid)
        ip = self.sandbox.ip if self.sandbox else self.ctx.ipam.ipam.allocations.get(self.uid, "")
        await remove_pod_network(self.cfg.node_netns, Sandbox(netns, ip, node_veth(self.uid)))
        remove_etc_files(self.cfg.etc_netns / netns)
        self.ctx.records.remove(netns)
        self.ctx.ipam.release(self.uid)
        self.sandbox = None

    async def _delete_from_api(self) -> None:
        for _ in range(10):
            try:
                await self.ctx.api.delete_pod(self.namespace, self.name, self.uid)
                return
            except ApiUnavailable as e:
                log.warning("%s/%s: delete failed: %s", self.namespace, self.name, e)
                await asyncio.sleep(self.timings.retry)

    # -- status ---------------------------------------------------------------------

    def _previous_status(self) -> PodStatus:
        api_status = self.pod.get("status") or {}
        if self._last_status is None:
            return api_status
        ours = {c["type"] for c in self._last_status.get("conditions", [])}
        foreign = [c for c in api_status.get("conditions") or [] if c.get("type") not in ours]
        merged = dict(self._last_status)
        merged["conditions"] = [*self._last_status.get("conditions", []), *foreign]
        return cast(PodStatus, merged)

    async def _status_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(self.timings.status_debounce)
            self._changed.clear()
            status = compute_status(self.view(), self._previous_status(), rfc3339())
            if status == self._last_status:
                continue
            try:
                await self.ctx.api.patch_pod_status(self.namespace, self.name, status)
            except ApiUnavailable as e:
                log.warning("%s/%s: status patch failed: %s", self.namespace, self.name, e)
                await asyncio.sleep(self.timings.retry)
                self._changed.set()
                continue
            self._last_status = status
