"""The destination service's picture of its cluster: Services, EndpointSlices and Pods.

A mutable store fed with watch events (``mesh.k8s.events``) and indexed for the
lookups discovery makes: a service by name or cluster IP, the slices of a
service, a pod by name or IP. ``apply`` says which namespaces an event touched,
so the watcher recomputes only the subscriptions that could have changed.
No I/O; the store never reaches for objects it was not given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent
from mesh.k8s.objects import EndpointSlice, ObjectKey, Pod, Service

__all__ = ["ALL_NAMESPACES", "ClusterSnapshot", "SnapshotEvent", "Touched"]

Touched = frozenset[str] | None
"""The namespaces an event touched; ``None`` means possibly all of them."""
ALL_NAMESPACES: Touched = None

_KINDS: tuple[type, ...] = (Service, EndpointSlice, Pod)
_K = TypeVar("_K")
Object = Service | EndpointSlice | Pod
SnapshotEvent = WatchEvent[Service] | WatchEvent[EndpointSlice] | WatchEvent[Pod]
"""What feeds a snapshot: watch events of any of its kinds."""


class ClusterSnapshot:
    """Every Service, EndpointSlice and Pod the watches have reported, with lookup indexes."""

    def __init__(self) -> None:
        self._services: dict[ObjectKey, Service] = {}
        self._slices: dict[ObjectKey, EndpointSlice] = {}
        self._pods: dict[ObjectKey, Pod] = {}
        self._by_cluster_ip: dict[str, set[ObjectKey]] = defaultdict(set)
        self._slices_by_service: dict[ObjectKey, set[ObjectKey]] = defaultdict(set)
        self._pods_by_ip: dict[str, set[ObjectKey]] = defaultdict(set)
        self._listed: set[type] = set()

    @classmethod
    def of(
        cls,
        services: Iterable[Service] = (),
        slices: Iterable[EndpointSlice] = (),
        pods: Iterable[Pod] = (),
    ) -> ClusterSnapshot:
        """A snapshot holding exactly these objects, every kind listed."""
        snapshot = cls()
        snapshot.apply(Listed(Service, tuple(services)))
        snapshot.apply(Listed(EndpointSlice, tuple(slices)))
        snapshot.apply(Listed(Pod, tuple(pods)))
        return snapshot

    @property
    def synced(self) -> bool:
        """Whether every kind has been listed at least once."""
        return all(kind in self._listed for kind in _KINDS)

    def apply(self, event: SnapshotEvent) -> Touched:
        """Record ``event``; return the namespaces whose discovery answers may have changed."""
        if isinstance(event, Listed):
            self._listed.add(event.kind)
            for obj in self._all(event.kind):
                self._remove(obj)
            for obj in event.objects:
                self._add(obj)
            return ALL_NAMESPACES
        obj = event.obj
        old = self._existing(obj)
        if old is not None:
            self._remove(old)
        if isinstance(event, Upserted):
            self._add(obj)
        elif not isinstance(event, Deleted):  # pragma: no cover - exhaustive
            raise TypeError(f"unexpected event {event!r}")
        return frozenset({obj.namespace})

    def _all(self, kind: type) -> list[Object]:
        if kind is Service:
            return list(self._services.values())
        if kind is EndpointSlice:
            return list(self._slices.values())
        return list(self._pods.values())

    def _existing(self, obj: Object) -> Object | None:
        if isinstance(obj, Service):
            return self._services.get(obj.key)
        if isinstance(obj, EndpointSlice):
            return self._slices.get(obj.key)
        return self._pods.get(obj.key)

    def _add(self, obj: Object) -> None:
        if isinstance(obj, Service):
            self._services[obj.key] = obj
            for ip in obj.addresses():
                self._by_cluster_ip[ip].add(obj.key)
        elif isinstance(obj, EndpointSlice):
            self._slices[obj.key] = obj
            if obj.service_key:
                self._slices_by_service[obj.service_key].add(obj.key)
        else:
            self._pods[obj.key] = obj
            if not obj.host_network:
                for ip in obj.addresses():
                    self._pods_by_ip[ip].add(obj.key)

    def _remove(self, obj: Object) -> None:
        if isinstance(obj, Service):
            del self._services[obj.key]
            for ip in obj.addresses():
                _discard(self._by_cluster_ip, ip, obj.key)
        elif isinstance(obj, EndpointSlice):
            del self._slices[obj.key]
            if obj.service_key:
                _discard(self._slices_by_service, obj.service_key, obj.key)
        else:
            del self._pods[obj.key]
            for ip in obj.addresses():
                _discard(self._pods_by_ip, ip, obj.key)

    def service(self, namespace: str, name: str) -> Service | None:
        return self._services.get(ObjectKey(namespace, name))

    def service_by_ip(self, ip: str) -> Service | None:
        """The service whose cluster IP is ``ip`` (the oldest key, should two claim it)."""
        keys = self._by_cluster_ip.get(ip)
        return self._services[min(keys)] if keys else None

    def slices(self, service: ObjectKey) -> list[EndpointSlice]:
        """The service's EndpointSlices, in name order."""
        return [self._slices[k] for k in sorted(self._slices_by_service.get(service, ()))]

    def pod(self, namespace: str, name: str) -> Pod | None:
        return self._pods.get(ObjectKey(namespace, name))

    def pod_by_ip(self, ip: str) -> Pod | None:
        """The live pod (not host-network) that has ``ip``; running pods win over finished ones."""
        pods = [self._pods[k] for k in sorted(self._pods_by_ip.get(ip, ()))]
        live = [p for p in pods if p.phase in ("Running", "Pending") and not p.deleting]
        return next(iter(live or pods), None)


def _discard(index: dict[_K, set[ObjectKey]], key: _K, value: ObjectKey) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]
