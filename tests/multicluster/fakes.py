"""In-memory clusters at the mirror controller's seams (``LocalCluster``, ``RemoteConnector``).

Each fake keeps objects in dicts and streams them as the shared watch does: ``Listed``
first, then ``Upserted``/``Deleted``. Failures are injected by name so tests can show the
controller reports and retries them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx2

from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent
from mesh.k8s.objects import EndpointSlice, ObjectKey, Service
from mesh.multicluster.kubeconfig import RemoteCluster
from mesh.multicluster.mirror.desired import MirrorEndpoints, MirrorService
from mesh.multicluster.mirror.federated import Op
from mesh.multicluster.mirror.liveness import ProbeOutcome
from mesh.multicluster.mirror.messages import Namespace
from tests.multicluster.mirror_support import apply_claim_to, as_service


class _Feed:
    """One kind's objects and its watchers."""

    def __init__(self, kind: type[Any]) -> None:
        self.kind = kind
        self.objects: dict[Any, Any] = {}
        self._watchers: list[asyncio.Queue[WatchEvent[Any]]] = []

    def put(self, key: Any, obj: Any) -> None:
        self.objects[key] = obj
        for q in self._watchers:
            q.put_nowait(Upserted(obj))

    def delete(self, key: Any) -> None:
        obj = self.objects.pop(key, None)
        if obj is not None:
            for q in self._watchers:
                q.put_nowait(Deleted(obj))

    async def stream(self) -> AsyncIterator[WatchEvent[Any]]:
        q: asyncio.Queue[WatchEvent[Any]] = asyncio.Queue()
        self._watchers.append(q)
        try:
            yield Listed(self.kind, tuple(self.objects.values()))
            while True:
                yield await q.get()
        finally:
            self._watchers.remove(q)


def _http_error(message: str) -> httpx2.HTTPError:
    return httpx2.HTTPError(message)


class FakeLocal:
    """The source cluster."""

    def __init__(self) -> None:
        self.services = _Feed(Service)
        self.endpoints = _Feed(MirrorEndpoints)
        self.namespaces = _Feed(Namespace)
        self.links = _Feed(dict)
        self.secrets: dict[str, str] = {}
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.failures: dict[str, int] = {}
        """Operation name -> how many more calls of it fail."""
        self.writes = 0
        self._rv = itertools.count(1000)

    def _maybe_fail(self, op: str) -> None:
        left = self.failures.get(op, 0)
        if left:
            self.failures[op] = left - 1
            raise _http_error(f"injected failure of {op}")

    # -- LocalCluster -------------------------------------------------------------------------

    async def credentials(self, secret: str) -> str:
        self._maybe_fail("credentials")
        if secret not in self.secrets:
            raise _http_error(f"secrets {secret!r} not found")
        return self.secrets[secret]

    async def apply_service(self, svc: MirrorService) -> None:
        self._maybe_fail("apply_service")
        self.writes += 1
        self.services.put(svc.key, as_service(svc, rv=str(next(self._rv))))

    async def apply_endpoints(self, eps: MirrorEndpoints) -> None:
        self._maybe_fail("apply_endpoints")
        self.writes += 1
        self.endpoints.put(eps.key, eps)

    async def apply_federated(self, claim: Op) -> None:
        self._maybe_fail("apply_federated")
        old = self.services.objects.get(claim.key)
        new = apply_claim_to(old, claim, rv=str(next(self._rv)))
        if new is None:
            self.writes += 1
            self.services.delete(claim.key)
        elif new is not old:
            self.writes += 1
            self.services.put(claim.key, new)

    async def delete_service(self, ns: str, name: str) -> None:
        self._maybe_fail("delete_service")
        self.writes += 1
        self.services.delete(ObjectKey(ns, name))

    async def delete_endpoints(self, ns: str, name: str) -> None:
        self.endpoints.delete(ObjectKey(ns, name))

    async def patch_link_status(self, link: str, status: dict[str, Any]) -> None:
        self._maybe_fail("status")
        self.statuses.append(status)

    async def record_event(self, link: str, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    # -- helpers ------------------------------------------------------------------------------

    def mirror(self, ns: str, name: str) -> Service | None:
        svc = self.services.objects.get(ObjectKey(ns, name))
        return svc if isinstance(svc, Service) else None

    def ready_reason(self) -> str:
        return str(self.statuses[-1]["conditions"][0]["reason"]) if self.statuses else ""


class LocalSeam:
    """Adapts ``FakeLocal`` to the ``LocalCluster`` protocol's method names."""

    def __init__(self, fake: FakeLocal) -> None:
        self.fake = fake

    def services(self) -> AsyncIterator[WatchEvent[Service]]:
        return self.fake.services.stream()

    def mirror_endpoints(self) -> AsyncIterator[WatchEvent[MirrorEndpoints]]:
        return self.fake.endpoints.stream()

    def namespaces(self) -> AsyncIterator[WatchEvent[Namespace]]:
        return self.fake.namespaces.stream()

    def links(self) -> AsyncIterator[WatchEvent[dict[str, Any]]]:
        return self.fake.links.stream()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fake, name)


class FakeRemote:
    """The target cluster; unreachable (every list fails) while ``reachable`` is false."""

    def __init__(self) -> None:
        self.services = _Feed(Service)
        self.slices = _Feed(EndpointSlice)
        self.reachable = True
        self.connected: list[RemoteCluster] = []
        self.open_sessions = 0

    def export(self, svc: Service) -> None:
        self.services.put(svc.key, svc)

    def unexport(self, svc: Service) -> None:
        labels = {k: v for k, v in svc.labels.items() if k != "mirror.linkerd.io/exported"}
        self.services.put(svc.key, replace(svc, labels=labels, resource_version="9999"))

    def connect(self, cluster: RemoteCluster) -> _Session:
        self.connected.append(cluster)
        return _Session(self)


class _Session:
    def __init__(self, remote: FakeRemote) -> None:
        self._remote = remote
        remote.open_sessions += 1

    async def _kind(
        self, feed: _Feed, on_error: Callable[[Exception], None]
    ) -> AsyncIterator[WatchEvent[Any]]:
        while not self._remote.reachable:
            on_error(httpx2.ConnectError("All connection attempts failed"))
            await asyncio.sleep(0.01)
        async for event in feed.stream():
            yield event

    async def events(
        self, on_error: Callable[[Exception], None]
    ) -> AsyncIterator[WatchEvent[Service] | WatchEvent[EndpointSlice]]:
        from mesh.k8s.watching import merge

        async for event in merge(
            self._kind(self._remote.services, on_error), self._kind(self._remote.slices, on_error)
        ):
            yield event

    async def close(self) -> None:
        self._remote.open_sessions -= 1


class FakeProber:
    """Answers every probe with ``status`` (``None``: no answer)."""

    def __init__(self, status: int | None = 200) -> None:
        self.status = status
        self.probes = 0
        self.by_host: dict[str, int | None] = {}
        """Per-address answers overriding ``status``."""
        self.hosts: set[str] = set()

    async def probe(self, host: str, port: int, path: str, timeout: float) -> ProbeOutcome:
        self.probes += 1
        self.hosts.add(host)
        status = self.by_host.get(host, self.status)
        return ProbeOutcome(status, 4.0, "" if status else "ConnectError")


class IdentityResolver:
    async def resolve(self, addresses: tuple[str, ...]) -> tuple[str, ...]:
        return addresses
