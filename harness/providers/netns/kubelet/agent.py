"""The kubelet stand-in's main loop: node, pod watch, workers, shutdown (IO).

Pods bound to this node are listed, then watched from the list's resourceVersion;
when the watch breaks (expiry, 410 Gone, connection loss) everything is listed again
and reconciled, so a missed DELETED event still stops its pod. SIGTERM stops every
pod (short grace), removes their sandboxes and exits; the Node object stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import httpx2
from lightkube import ApiError
from lightkube.config.kubeconfig import KubeConfig

from harness.providers.netns.kubelet.api import LightkubeApi
from harness.providers.netns.kubelet.cgroups import CgroupV2
from harness.providers.netns.kubelet.config import KubeletConfig
from harness.providers.netns.kubelet.context import IpamStore, NodeContext
from harness.providers.netns.kubelet.events import EventRecorder
from harness.providers.netns.kubelet.imagefs import materialise
from harness.providers.netns.kubelet.kobjects import Pod, pod_key
from harness.providers.netns.kubelet.logserver import LogServer
from harness.providers.netns.kubelet.naming import pod_netns, uid_prefix_of_netns
from harness.providers.netns.kubelet.node import NodeAgent
from harness.providers.netns.kubelet.nsnet import NetnsSockets
from harness.providers.netns.kubelet.probes import Prober
from harness.providers.netns.kubelet.sandbox import (
    Sandbox,
    SandboxRecords,
    list_netns,
    remove_etc_files,
    remove_pod_network,
)
from harness.providers.netns.kubelet.worker import PodWorker

log = logging.getLogger(__name__)

_API_ERRORS = (ApiError, httpx2.HTTPError, OSError)


class Kubelet:
    def __init__(self, cfg: KubeletConfig) -> None:
        self.cfg = cfg
        self.api = LightkubeApi(KubeConfig.from_file(cfg.kubeconfig))
        self.node = NodeAgent(self.api, cfg)
        self.workers: dict[str, PodWorker] = {}
        self.ctx: NodeContext | None = None
        self.sockets = NetnsSockets(cfg.node_netns_path)
        self.logs: LogServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._until(stop, self._start())
            if not stop.is_set():
                await stop.wait()
        finally:
            await self.shutdown()

    async def _until(self, stop: asyncio.Event, coro: Any) -> None:
        """Run ``coro`` unless ``stop`` is set first."""
        work = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        else:
            work.result()

    async def _start(self) -> None:
        cfg = self.cfg
        while True:
            try:
                await self.node.register()
                break
            except _API_ERRORS as e:
                log.warning("cannot register node %s yet: %s", cfg.node_name, e)
                await asyncio.sleep(cfg.timings.retry)
        self._spawn(self.node.heartbeat())
        cidr = await self.node.pod_cidr()
        log.info("node %s has podCIDR %s", cfg.node_name, cidr)
        events = EventRecorder(self.api, cfg.node_name)
        self.ctx = NodeContext(
            cfg,
            self.api,
            events,
            IpamStore(cfg.state_dir, cidr),
            SandboxRecords(cfg.state_dir),
            Prober(self.sockets),
            images=materialise(cfg.state_dir, cfg.bin_dir, cfg.upstream_dirs),
        )
        self.ctx.cgroups, self.ctx.cgroups_problem = CgroupV2.detect(cfg.node_name)
        if self.ctx.cgroups is None:
            log.warning(
                "containers' cpu/memory limits will not be enforced: %s", self.ctx.cgroups_problem
            )
        self.logs = LogServer(
            self.sockets,
            cfg.node_ip,
            cfg.log_port,
            cfg.state_dir / "pki",
            cfg.node_name,
            self.find_worker,
            cfg.timings,
        )
        try:
            await self.logs.start()
        except OSError as e:
            log.warning("logs server not started: %s", e)
        self._spawn(self._sync(self.ctx))

    def find_worker(self, namespace: str, name: str) -> PodWorker | None:
        for w in self.workers.values():
            if w.namespace == namespace and w.name == name and not w.done.is_set():
                return w
        return None

    # -- pod sync -------------------------------------------------------------------

    async def _sync(self, ctx: NodeContext) -> None:
        first = True
        while True:
            try:
                pods, rv = await self.api.list_pods(self.cfg.node_name)
            except _API_ERRORS as e:
                log.warning("listing pods failed: %s", e)
                await asyncio.sleep(self.cfg.timings.retry)
                continue
            if first:
                await self._clean_orphans(ctx, pods)
                first = False
            self._reconcile(ctx, pods)
            try:
                async for kind, pod in self.api.watch_pods(self.cfg.node_name, rv):
                    self._on_event(ctx, kind, pod)
            except _API_ERRORS as e:
                log.info("pod watch ended (%s); listing again", e)
                await asyncio.sleep(0.2)

    def _reconcile(self, ctx: NodeContext, pods: list[Pod]) -> None:
        seen = set()
        for pod in pods:
            seen.add(pod.get("metadata", {}).get("uid", ""))
            self._on_pod(ctx, pod)
        for uid, worker in list(self.workers.items()):
            if uid not in seen and not worker.terminating:
                self._spawn(self._terminate(worker, self.cfg.timings.shutdown_grace, False))

    def _on_event(self, ctx: NodeContext, kind: str, pod: Pod) -> None:
        if kind == "DELETED":
            worker = self.workers.get(pod.get("metadata", {}).get("uid", ""))
            if worker is not None and not worker.terminating:
                log.info("pod %s removed from the API; stopping it", pod_key(pod))
                self._spawn(
                    self._terminate(
                        worker, min(worker.grace_period(), self.cfg.timings.shutdown_grace), False
                    )
                )
            return
        if kind in ("ADDED", "MODIFIED"):
            self._on_pod(ctx, pod)

    def _on_pod(self, ctx: NodeContext, pod: Pod) -> None:
        uid = pod.get("metadata", {}).get("uid", "")
        worker = self.workers.get(uid)
        fresh = worker is None
        if worker is None:
            worker = PodWorker(ctx, pod)
            self.workers[uid] = worker
        else:
            worker.update(pod)
        if worker.deletion_requested:
            if not worker.terminating:
                log.info("pod %s is being deleted (grace %ss)", pod_key(pod), worker.grace_period())
                self._spawn(self._terminate(worker, worker.grace_period(), True))
        elif fresh:
            log.info("starting pod %s (%s)", pod_key(pod), uid)
            worker.start()

    async def _terminate(self, worker: PodWorker, grace: float, delete: bool) -> None:
        try:
            await worker.terminate(grace, delete)
        except Exception:
            log.exception("stopping pod %s/%s failed", worker.namespace, worker.name)
        finally:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]

    async def _clean_orphans(self, ctx: NodeContext, pods: list[Pod]) -> None:
        """Remove sandboxes an earlier run left for pods that no longer exist."""
        live = {p.get("metadata", {}).get("uid", "") for p in pods}
        live_prefixes = {pod_netns(self.cfg.netns_prefix, uid) for uid in live}
        records = {r.netns: r for r in ctx.records.load_all()}
        names = set(records)
        for name in await list_netns():
            if uid_prefix_of_netns(self.cfg.netns_prefix, name) is not None:
                names.add(name)
        for name in sorted(names - live_prefixes):
            record = records.get(name)
            sandbox = record.sandbox() if record else Sandbox(name, "")
            log.info("removing orphaned pod sandbox %s", name)
            await remove_pod_network(self.cfg.node_netns, sandbox)
            remove_etc_files(self.cfg.etc_netns / name)
            ctx.records.remove(name)
            if record is not None:
                ctx.ipam.release(record.uid)
        for uid in list(ctx.ipam.ipam.allocations):
            if uid not in live:
                ctx.ipam.release(uid)

    # -- shutdown -------------------------------------------------------------------

    async def shutdown(self) -> None:
        t = self.cfg.timings
        log.info("stopping %d pod(s)", len(self.workers))
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        stops = [
            asyncio.ensure_future(w.terminate(min(w.grace_period(), t.shutdown_grace), False))
            for w in list(self.workers.values())
        ]
        if stops:
            _, pending = await asyncio.wait(stops, timeout=t.shutdown_budget)
            for p in pending:
                p.cancel()
        if self.logs is not None:
            await self.logs.stop()
        if self.ctx is not None:
            await self.ctx.events.drain()
        with contextlib.suppress(Exception):
            await self.api.close()
        self.sockets.close()


async def amain(cfg: KubeletConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    await Kubelet(cfg).run(stop)
