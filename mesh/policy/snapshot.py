"""The policy service's picture of its cluster: pods, namespaces and policy resources.

A mutable store fed with watch events (``mesh.k8s.events``), one table per kind,
each by namespace then name. ``apply`` says which namespaces an event touched,
so the watcher recomputes only the ports that could have changed: a pod, Server,
ServerAuthorization or AuthorizationPolicy touches its namespace, a Namespace
itself; authentications may be referenced from any namespace, so they (and
every ``Listed``) touch all. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent
from mesh.k8s.objects import ObjectKey, Pod
from mesh.policy.resources import (
    AuthorizationPolicy,
    MeshTLSAuthentication,
    Namespace,
    NetworkAuthentication,
    Server,
    ServerAuthorization,
)

__all__ = ["ALL_NAMESPACES", "KINDS", "PolicyEvent", "PolicyObject", "PolicySnapshot", "Touched"]

Touched = frozenset[str] | None
"""The namespaces an event touched; ``None`` means possibly all of them."""
ALL_NAMESPACES: Touched = None

PolicyObject = (
    Pod
    | Namespace
    | Server
    | ServerAuthorization
    | AuthorizationPolicy
    | MeshTLSAuthentication
    | NetworkAuthentication
)
PolicyEvent = (
    WatchEvent[Pod]
    | WatchEvent[Namespace]
    | WatchEvent[Server]
    | WatchEvent[ServerAuthorization]
    | WatchEvent[AuthorizationPolicy]
    | WatchEvent[MeshTLSAuthentication]
    | WatchEvent[NetworkAuthentication]
)
"""What feeds a snapshot: watch events of any of its kinds."""

KINDS: tuple[type, ...] = (
    Pod,
    Namespace,
    Server,
    ServerAuthorization,
    AuthorizationPolicy,
    MeshTLSAuthentication,
    NetworkAuthentication,
)
_CROSS_NAMESPACE: tuple[type, ...] = (MeshTLSAuthentication, NetworkAuthentication)

T = TypeVar("T")


class _Table(Generic[T]):
    """Objects of one kind by namespace, then name."""

    def __init__(self) -> None:
        self.by_ns: dict[str, dict[str, T]] = {}

    def put(self, namespace: str, name: str, obj: T) -> None:
        self.by_ns.setdefault(namespace, {})[name] = obj

    def drop(self, namespace: str, name: str) -> None:
        names = self.by_ns.get(namespace)
        if names is not None:
            names.pop(name, None)
            if not names:
                del self.by_ns[namespace]

    def get(self, namespace: str, name: str) -> T | None:
        return self.by_ns.get(namespace, {}).get(name)

    def in_namespace(self, namespace: str) -> list[T]:
        """The namespace's objects in name order."""
        names = self.by_ns.get(namespace, {})
        return [names[n] for n in sorted(names)]


def _place(obj: PolicyObject) -> tuple[str, str]:
    if isinstance(obj, Namespace):
        return obj.name, obj.name
    return obj.namespace, obj.name


class PolicySnapshot:
    """Every object the watches have reported, by kind."""

    def __init__(self) -> None:
        self._pods: _Table[Pod] = _Table()
        self._namespaces: _Table[Namespace] = _Table()
        self._servers: _Table[Server] = _Table()
        self._server_authorizations: _Table[ServerAuthorization] = _Table()
        self._authorization_policies: _Table[AuthorizationPolicy] = _Table()
        self._meshtls: _Table[MeshTLSAuthentication] = _Table()
        self._networks: _Table[NetworkAuthentication] = _Table()
        self._tables: dict[type, _Table[Any]] = {
            Pod: self._pods,
            Namespace: self._namespaces,
            Server: self._servers,
            ServerAuthorization: self._server_authorizations,
            AuthorizationPolicy: self._authorization_policies,
            MeshTLSAuthentication: self._meshtls,
            NetworkAuthentication: self._networks,
        }
        self._listed: set[type] = set()

    @classmethod
    def of(cls, objects: Iterable[PolicyObject] = ()) -> PolicySnapshot:
        """A snapshot holding exactly ``objects``, every kind listed."""
        snapshot = cls()
        everything = list(objects)
        for kind in KINDS:
            listed: tuple[Any, ...] = tuple(o for o in everything if type(o) is kind)
            snapshot.apply(Listed(kind, listed))
        return snapshot

    @property
    def synced(self) -> bool:
        """Whether every kind has been listed at least once."""
        return all(kind in self._listed for kind in KINDS)

    def apply(self, event: PolicyEvent) -> Touched:
        """Record ``event``; return the namespaces whose policies may have changed."""
        if isinstance(event, Listed):
            table = self._tables[event.kind]
            table.by_ns.clear()
            for obj in event.objects:
                table.put(*_place(obj), obj)
            self._listed.add(event.kind)
            return ALL_NAMESPACES
        obj = event.obj
        table = self._tables[type(obj)]
        namespace, name = _place(obj)
        if isinstance(event, Upserted):
            table.put(namespace, name, obj)
        elif isinstance(event, Deleted):
            table.drop(namespace, name)
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"unexpected event {event!r}")
        if isinstance(obj, _CROSS_NAMESPACE):
            return ALL_NAMESPACES
        return frozenset({namespace})

    def pod(self, namespace: str, name: str) -> Pod | None:
        return self._pods.get(namespace, name)

    def namespace(self, name: str) -> Namespace | None:
        return self._namespaces.get(name, name)

    def servers(self, namespace: str) -> list[Server]:
        return self._servers.in_namespace(namespace)

    def policy_namespaces(self) -> list[str]:
        """The namespaces holding Servers or AuthorizationPolicies, sorted."""
        return sorted({*self._servers.by_ns, *self._authorization_policies.by_ns})

    def server_authorizations(self, namespace: str) -> list[ServerAuthorization]:
        return self._server_authorizations.in_namespace(namespace)

    def authorization_policies(self, namespace: str) -> list[AuthorizationPolicy]:
        return self._authorization_policies.in_namespace(namespace)

    def meshtls_authentication(self, key: ObjectKey) -> MeshTLSAuthentication | None:
        return self._meshtls.get(key.namespace, key.name)

    def network_authentication(self, key: ObjectKey) -> NetworkAuthentication | None:
        return self._networks.get(key.namespace, key.name)
