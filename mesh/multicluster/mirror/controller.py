"""The mirror controller's asyncio layer: feeds the core, carries out its commands.

Rules:
- One queue of core events; one task applies them in order and dispatches the commands.
  Writes for one mirror run in order (a lock per mirror); writes for different mirrors
  run concurrently, at most ``write_concurrency`` at a time.
- Every failure is reported and retried, never fatal: a failed write comes back to the
  core as ``CommandFailed`` and, after a back-off doubling per mirror, as ``Retry``; an
  unreadable Link or credentials Secret, a garbage kubeconfig or an unreachable target
  becomes ``LinkInvalid``/``RemoteFailed`` (the Link's ``Ready`` condition, an Event, a
  log line) and is tried again after a back-off. A remote that fails
  ``reconnect_after`` times in a row is reconnected with the Secret read afresh.
- The Link's status is written at most every ``status_interval`` seconds, when changed.
- The seams (``LocalCluster``, ``RemoteConnector``, ``Prober``, ``Resolver``) are
  protocols so tests can drive the controller without an API server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2

from mesh.k8s.events import Deleted, Listed, WatchEvent
from mesh.k8s.objects import EndpointSlice, ObjectKey, Service
from mesh.k8s.watching import WatchSettings
from mesh.multicluster.kubeconfig import KubeconfigError, RemoteCluster, parse_kubeconfig
from mesh.multicluster.mirror.admin import MirrorMetrics
from mesh.multicluster.mirror.core import MirrorCore
from mesh.multicluster.mirror.desired import MirrorEndpoints, MirrorService
from mesh.multicluster.mirror.federated import Op, link_target
from mesh.multicluster.mirror.link import Link, LinkError, parse_link
from mesh.multicluster.mirror.liveness import ProbeOutcome
from mesh.multicluster.mirror.messages import (
    ApplyEndpoints,
    ApplyFederated,
    ApplyService,
    Command,
    CommandFailed,
    DeleteEndpoints,
    DeleteMirror,
    Event,
    GatewayState,
    LinkInvalid,
    LinksChanged,
    LinkUpdated,
    LocalEvent,
    Namespace,
    ProbeResult,
    RecordEvent,
    RemoteEvent,
    RemoteFailed,
    Retry,
)

__all__ = [
    "HttpProber",
    "LocalCluster",
    "MirrorController",
    "MirrorSettings",
    "Prober",
    "RemoteConnector",
    "RemoteSession",
    "Resolver",
    "SystemResolver",
    "describe_remote_error",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirrorSettings:
    """The controller's waits and limits (seconds unless said)."""

    watch: WatchSettings = field(default_factory=WatchSettings)
    status_interval: float = 1.0
    """Shortest time between two writes of the Link's status."""
    status_entries: int = 200
    """Above this many entries the status interval grows in proportion (1000 entries: 5 s)."""
    write_concurrency: int = 32
    """Writes in flight at once (under load each waits on the API server, not the CPU)."""
    retry_initial: float = 0.5
    retry_max: float = 30.0
    remote_timeout: float = 10.0
    """Timeout of each request to the target's API server (connect, read; watches: connect)."""
    local_timeout: float = 30.0
    """Timeout of each request to the local API server (a loaded one answers writes slowly)."""
    reconnect_after: int = 3
    """Consecutive remote failures after which the credentials are read again."""


class LocalCluster(Protocol):
    """The source cluster: what the controller watches there and writes."""

    def services(self) -> AsyncIterator[WatchEvent[Service]]: ...
    def mirror_endpoints(self) -> AsyncIterator[WatchEvent[MirrorEndpoints]]: ...
    def namespaces(self) -> AsyncIterator[WatchEvent[Namespace]]: ...
    def links(self) -> AsyncIterator[WatchEvent[dict[str, Any]]]: ...
    async def credentials(self, secret: str) -> str: ...
    async def apply_service(self, svc: MirrorService) -> None: ...
    async def apply_endpoints(self, eps: MirrorEndpoints) -> None: ...
    async def apply_federated(self, claim: Op) -> None: ...
    async def delete_service(self, ns: str, name: str) -> None: ...
    async def delete_endpoints(self, ns: str, name: str) -> None: ...
    async def patch_link_status(self, link: str, status: dict[str, Any]) -> None: ...
    async def record_event(self, link: str, type_: str, reason: str, message: str) -> None: ...


class RemoteSession(Protocol):
    def events(
        self, on_error: Callable[[Exception], None]
    ) -> AsyncIterator[WatchEvent[Service] | WatchEvent[EndpointSlice]]: ...
    async def close(self) -> None: ...


class RemoteConnector(Protocol):
    def connect(self, cluster: RemoteCluster) -> RemoteSession:
        """A session with the target; raises ``ValueError``/``OSError`` if it cannot be built."""
        ...


class Prober(Protocol):
    async def probe(self, host: str, port: int, path: str, timeout: float) -> ProbeOutcome: ...


class Resolver(Protocol):
    async def resolve(self, addresses: tuple[str, ...]) -> tuple[str, ...]: ...


class HttpProber:
    """``GET http://host:port/path`` with httpx; only the status and the time matter."""

    async def probe(self, host: str, port: int, path: str, timeout: float) -> ProbeOutcome:
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        started = time.monotonic()
        try:
            async with httpx2.AsyncClient(timeout=timeout, trust_env=False) as client:
                response = await client.get(f"http://{hostport}{path}")
        except Exception as e:  # any failure to get an answer is a failed probe
            elapsed = (time.monotonic() - started) * 1000
            return ProbeOutcome(None, elapsed, _describe(e))
        return ProbeOutcome(response.status_code, (time.monotonic() - started) * 1000)


class SystemResolver:
    """IPs stay as they are; names resolve through the system resolver (all addresses)."""

    async def resolve(self, addresses: tuple[str, ...]) -> tuple[str, ...]:
        loop = asyncio.get_running_loop()
        out: list[str] = []
        for address in addresses:
            try:
                out.append(str(ipaddress.ip_address(address)))
                continue
            except ValueError:
                pass
            infos = await loop.getaddrinfo(address, None, type=socket.SOCK_STREAM)
            out.extend(str(info[4][0]) for info in infos)
        return tuple(dict.fromkeys(out))


def describe_remote_error(e: BaseException) -> tuple[str, str]:
    """A Link ``Ready`` reason and message for a failure talking to the target."""
    status = getattr(e, "status", None)
    code = getattr(status, "code", None)
    detail = getattr(status, "message", None) or str(e)
    if code == 401:
        return "RemoteUnauthorized", f"the target's API server refused the credentials: {detail}"
    if code == 403:
        return "RemoteForbidden", f"the credentials may not read the target: {detail}"
    if isinstance(e, httpx2.HTTPStatusError):
        return "RemoteError", f"the target's API server answered {e.response.status_code}: {detail}"
    return "RemoteUnreachable", f"cannot reach the target's API server: {_describe(e)}"


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Reconnect(Exception):
    """Too many remote failures in a row: read the credentials again."""


class MirrorController:
    """One Link's mirror controller."""

    def __init__(
        self,
        link_name: str,
        local: LocalCluster,
        remote: RemoteConnector,
        metrics: MirrorMetrics,
        *,
        prober: Prober | None = None,
        resolver: Resolver | None = None,
        settings: MirrorSettings | None = None,
    ) -> None:
        self.link_name = link_name
        self.core = MirrorCore(link_name)
        self._local = local
        self._remote = remote
        self._metrics = metrics
        self._prober = prober or HttpProber()
        self._resolver = resolver or SystemResolver()
        self.settings = settings or MirrorSettings()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._sem = asyncio.Semaphore(self.settings.write_concurrency)
        self._locks: dict[ObjectKey, asyncio.Lock] = {}
        self._retry_delay: dict[ObjectKey, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._link: Link | None = None
        self._link_exists = False
        """Our Link object exists (valid or not): its status can be written."""
        self._remote_task: asyncio.Task[None] | None = None
        self._remote_secret: str | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._probe_key: tuple[Any, ...] | None = None
        self._broken: BaseException | None = None

    @property
    def ready(self) -> bool:
        return self.core.local_synced

    def _feed_ended(self, task: asyncio.Task[None]) -> None:
        """A feed never ends on its own: if one failed, stop (the pod restarts) - never hang."""
        if not task.cancelled() and task.exception() is not None:
            self._broken = task.exception()
            self._queue.put_nowait(Retry(()))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        """Run until cancelled."""
        feeds = [
            self._pump(self._local.services()),
            self._pump(self._local.mirror_endpoints()),
            self._pump(self._local.namespaces()),
            self._links(),
            self._status_writer(),
        ]
        for feed in feeds:
            self._spawn(feed).add_done_callback(self._feed_ended)
        try:
            while True:
                event = await self._queue.get()
                if self._broken is not None:
                    raise RuntimeError(f"a feed of the controller failed: {self._broken!r}")
                for command in self.core.handle(event):
                    self._dispatch(command)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- feeds ------------------------------------------------------------------------------

    async def _pump(self, stream: AsyncIterator[Any]) -> None:
        async for event in stream:
            self._queue.put_nowait(LocalEvent(event))

    async def _links(self) -> None:
        clusters: dict[str, str] = {}
        """Every Link in the namespace -> its target cluster (federated entries live by it)."""
        async for event in self._local.links():
            if isinstance(event, Listed):
                clusters = dict(link_target(o) for o in event.objects)
            elif isinstance(event, Deleted):
                clusters.pop(link_target(event.obj)[0], None)
            else:
                name, cluster = link_target(event.obj)
                clusters[name] = cluster
            # before our own Link's news, so the core never claims for a cluster it prunes
            self._queue.put_nowait(LinksChanged(frozenset(clusters.values())))
            if isinstance(event, Listed):
                mine = [
                    o for o in event.objects if o.get("metadata", {}).get("name") == self.link_name
                ]
                self._link_exists = bool(mine)
                if mine:
                    await self._on_link(mine[0])
                else:
                    self._queue.put_nowait(LinkInvalid("LinkNotFound", f"no Link {self.link_name}"))
            elif event.obj.get("metadata", {}).get("name") == self.link_name:
                self._link_exists = not isinstance(event, Deleted)
                if isinstance(event, Deleted):
                    self._queue.put_nowait(
                        LinkInvalid("LinkNotFound", f"Link {self.link_name} deleted")
                    )
                else:
                    await self._on_link(event.obj)

    async def _on_link(self, obj: dict[str, Any]) -> None:
        try:
            link = parse_link(obj)
        except LinkError as e:
            self._queue.put_nowait(LinkInvalid("InvalidLink", str(e)))
            return
        try:
            ips = await self._resolver.resolve(link.gateway_addresses)
        except OSError as e:
            self._queue.put_nowait(
                LinkInvalid("GatewayAddressUnresolvable", f"gateway address: {e}")
            )
            return
        self._link = link
        self._queue.put_nowait(LinkUpdated(link, ips))
        if self._remote_task is None or self._remote_secret != link.credentials_secret:
            if self._remote_task is not None:
                self._remote_task.cancel()
            self._remote_secret = link.credentials_secret
            self._remote_task = self._spawn(self._remote_loop(link.credentials_secret))
        probe_key = (tuple(sorted(ips)), link.gateway_port, link.probe)
        if self._probe_key != probe_key:
            if self._probe_task is not None:
                self._probe_task.cancel()
            self._probe_key = probe_key
            self._probe_task = (
                self._spawn(self._probe_loop(link, ips)) if link.has_gateway and ips else None
            )

    async def _remote_loop(self, secret: str) -> None:
        s = self.settings
        delay = s.retry_initial
        while True:
            try:
                text = await self._local.credentials(secret)
                cluster = parse_kubeconfig(text)
                session = self._remote.connect(cluster)
            except (httpx2.HTTPError, KubeconfigError, KeyError, ValueError, OSError) as e:
                reason = "InvalidCredentials"
                message = f"credentials Secret {secret}: {e}"
                if isinstance(e, httpx2.HTTPError):
                    reason, message = "CredentialsUnreadable", f"reading Secret {secret}: {e}"
                self._queue.put_nowait(RemoteFailed(reason, message))
                await asyncio.sleep(delay)
                delay = min(delay * 2, s.retry_max)
                continue
            failures = 0

            def on_error(e: Exception) -> None:
                nonlocal failures
                failures += 1
                self._queue.put_nowait(RemoteFailed(*describe_remote_error(e)))
                if failures >= s.reconnect_after:
                    raise _Reconnect from e

            try:
                async for event in session.events(on_error):
                    if isinstance(event, Listed):
                        failures = 0
                        delay = s.retry_initial
                    self._queue.put_nowait(RemoteEvent(event))
            except _Reconnect:
                _log.warning("target failed %d times in a row; reading credentials again", failures)
            except Exception as e:
                self._queue.put_nowait(RemoteFailed(*describe_remote_error(e)))
            finally:
                await session.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, s.retry_max)

    async def _probe_loop(self, link: Link, ips: tuple[str, ...]) -> None:
        """Probe every gateway address each period, concurrently; one result per address."""
        spec = link.probe
        hosts = sorted(set(ips))

        async def probe(host: str) -> None:
            outcome = await self._prober.probe(host, spec.port, spec.path, spec.timeout)
            if not outcome.ok:
                _log.info(
                    "gateway probe %s:%d%s failed: %s",
                    host,
                    spec.port,
                    spec.path,
                    outcome.describe(),
                )
            self._queue.put_nowait(ProbeResult(outcome, host))

        while True:
            started = time.monotonic()
            await asyncio.gather(*(probe(h) for h in hosts))
            await asyncio.sleep(max(0.0, spec.period - (time.monotonic() - started)))

    async def _status_writer(self) -> None:
        s = self.settings
        pause = s.status_interval
        while True:
            await asyncio.sleep(pause)
            if not self._link_exists:
                continue
            status = self.core.take_status()
            if status is None:
                continue
            # A status listing thousands of mirrors is a large write: space them out.
            pause = s.status_interval * max(1.0, len(status["mirrorServices"]) / s.status_entries)
            try:
                await self._local.patch_link_status(self.link_name, status)
            except httpx2.HTTPError as e:
                _log.warning("writing the status of Link %s failed: %s", self.link_name, e)
                self.core.mark_status_dirty()

    # -- commands ---------------------------------------------------------------------------

    def _dispatch(self, command: Command) -> None:
        match command:
            case GatewayState(alive, latency):
                self._metrics.gateway(alive, latency)
            case RecordEvent(type_, reason, message):
                self._spawn(self._record(type_, reason, message))
            case ApplyService(svc, _):
                self._spawn(self._write(svc.key, "service", self._local.apply_service(svc)))
            case ApplyEndpoints(eps):
                self._spawn(self._write(eps.key, "endpoints", self._local.apply_endpoints(eps)))
            case ApplyFederated(claim):
                self._spawn(self._write(claim.key, "federated", self._local.apply_federated(claim)))
            case DeleteMirror(key, _):
                self._spawn(self._write(key, "delete", self._delete_mirror(key)))
            case DeleteEndpoints(key):
                self._spawn(
                    self._write(
                        key, "delete", self._local.delete_endpoints(key.namespace, key.name)
                    )
                )

    async def _delete_mirror(self, key: ObjectKey) -> None:
        await asyncio.gather(
            self._local.delete_service(key.namespace, key.name),
            self._local.delete_endpoints(key.namespace, key.name),
        )

    async def _write(self, key: ObjectKey, kind: str, call: Coroutine[Any, Any, None]) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock, self._sem:
                await call
        except Exception as e:
            self._metrics.wrote(kind, False)
            _log.warning("%s of mirror %s failed: %s", kind, key, _describe(e))
            self._queue.put_nowait(CommandFailed(key, f"{kind} failed: {_describe(e)}"))
            delay = self._retry_delay.get(key, self.settings.retry_initial)
            self._retry_delay[key] = min(delay * 2, self.settings.retry_max)
            self._spawn(self._retry_later(key, delay))
            return
        self._metrics.wrote(kind, True)
        self._retry_delay.pop(key, None)

    async def _retry_later(self, key: ObjectKey, delay: float) -> None:
        await asyncio.sleep(delay)
        self._queue.put_nowait(Retry((key,)))

    async def _record(self, type_: str, reason: str, message: str) -> None:
        try:
            await self._local.record_event(self.link_name, type_, reason, message)
        except httpx2.HTTPError as e:
            _log.warning("recording event %s failed: %s", reason, e)
