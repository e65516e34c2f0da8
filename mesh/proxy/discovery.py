"""What the proxy needs from service discovery, as types, and the endpoint set it keeps.

The control plane's client (whatever speaks the destination API) implements
``Discovery``: for a target named ``host:port`` (a service IP and port, or a
name), a stream of ``Update``s. ``EndpointSet`` applies them, sans I/O:

- ``Add`` adds endpoints or replaces those with the same address; the set's
  metric labels are merged under each endpoint's own labels.
- ``Remove`` drops addresses; ``Replace`` swaps the whole set.
- ``Split`` divides the target among other targets by weight (a traffic split),
  or carries HTTP routes whose matches choose the backends per request (an
  HTTPRoute); an empty one ends the split.
- ``NoEndpoints`` empties the set (the service exists but nothing is ready, or
  ``exists=False``: it vanished); ``NotFound`` says the target is not a service
  the control plane knows, so the proxy forwards to the original destination.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mesh.proxy.routes import Route

__all__ = [
    "Add",
    "Address",
    "Backend",
    "Discovery",
    "Endpoint",
    "EndpointSet",
    "Labels",
    "NoEndpoints",
    "NotFound",
    "Remove",
    "Replace",
    "Resolution",
    "Split",
    "Update",
    "labels",
]

Labels = tuple[tuple[str, str], ...]
"""Metric labels as sorted ``(name, value)`` pairs (hashable, cheap to compare)."""


def labels(mapping: Mapping[str, str] | None = None, /, **more: str) -> Labels:
    """Sorted label pairs from a mapping and keywords."""
    merged = dict(mapping or {})
    merged.update(more)
    return tuple(sorted(merged.items()))


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A host (IP literal or name) and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """``host:port`` or ``[v6]:port``; raises ``ValueError`` if malformed."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not host:port: {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host, int(port))

    @property
    def is_ip(self) -> bool:
        """Whether the host is an IP literal."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address a service resolves to.

    ``identity`` is the TLS identity the peer must present (``None``: not meshed,
    plaintext). ``labels`` become ``dst_<name>`` metric labels. ``weight`` scales
    the endpoint's share (1 is normal). ``authority_override`` replaces the
    request's authority (gateway mode: the remote service's name).
    """

    address: Address
    identity: str | None = None
    labels: Labels = ()
    weight: float = 1.0
    authority_override: str | None = None


@dataclass(frozen=True, slots=True)
class Add:
    """Endpoints to add (or update, by address), with labels shared by the set."""

    endpoints: tuple[Endpoint, ...]
    labels: Labels = ()


@dataclass(frozen=True, slots=True)
class Remove:
    """Addresses that left the set."""

    addresses: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class Replace:
    """The whole set, replacing whatever was there."""

    endpoints: tuple[Endpoint, ...]
    labels: Labels = ()


@dataclass(frozen=True, slots=True)
class NoEndpoints:
    """The set is empty; ``exists`` is False when the service itself is gone."""

    exists: bool = True


@dataclass(frozen=True, slots=True)
class NotFound:
    """The target is not a service discovery knows: forward to it directly."""


@dataclass(frozen=True, slots=True)
class Backend:
    """One weighted share of a split target; ``target`` None: a backend that does not exist."""

    target: str | None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Split:
    """Requests to the target are divided among ``backends`` by weight (TrafficSplit);
    each backend is resolved as a target of its own. ``routes`` (HTTPRoute rules, most
    specific first) choose the weighted backends per HTTP request instead. An empty
    split restores direct routing."""

    backends: tuple[Backend, ...] = ()
    routes: tuple[Route, ...] = ()


Update = Add | Remove | Replace | NoEndpoints | NotFound | Split


class Discovery(Protocol):
    """Where endpoint sets come from (the destination service's client, or a fake)."""

    def resolve(self, target: str) -> AsyncIterator[Update]:
        """Updates for ``target`` (``host:port``) until the iterator is closed."""
        ...


class Resolution(StrEnum):
    """What is known about a target."""

    PENDING = "pending"
    ENDPOINTS = "endpoints"
    NO_ENDPOINTS = "no-endpoints"
    NOT_FOUND = "not-found"


def _merge(set_labels: Labels, endpoint: Endpoint) -> Endpoint:
    if not set_labels:
        return endpoint
    merged = dict(set_labels)
    merged.update(endpoint.labels)
    return replace(endpoint, labels=tuple(sorted(merged.items())))


@dataclass
class EndpointSet:
    """The current endpoints of one target, kept up to date by ``apply``."""

    state: Resolution = Resolution.PENDING
    endpoints: dict[Address, Endpoint] = field(default_factory=dict)
    split: tuple[Backend, ...] = ()
    """The weighted backends, when the target is split."""
    routes: tuple[Route, ...] = ()
    """HTTP routes choosing backends per request, when the target has any."""
    version: int = 0
    """Incremented by every update, so watchers can tell something changed."""

    def apply(self, update: Update) -> None:
        """Apply one update from discovery."""
        self.version += 1
        match update:
            case Add(endpoints, set_labels):
                self._add(endpoints, set_labels)
            case Replace(endpoints, set_labels):
                self.endpoints.clear()
                self._add(endpoints, set_labels)
            case Remove(addresses):
                for address in addresses:
                    self.endpoints.pop(address, None)
                if self.state is not Resolution.PENDING or self.endpoints:
                    self._settle()
            case NoEndpoints():
                self.endpoints.clear()
                self.state = Resolution.NO_ENDPOINTS
            case NotFound():
                self.endpoints.clear()
                self.state = Resolution.NOT_FOUND
            case Split(backends, routes):
                self.split = tuple(b for b in backends if b.weight > 0)
                self.routes = routes

    def _add(self, endpoints: Iterable[Endpoint], set_labels: Labels) -> None:
        for endpoint in endpoints:
            self.endpoints[endpoint.address] = _merge(set_labels, endpoint)
        self._settle()

    def _settle(self) -> None:
        self.state = Resolution.ENDPOINTS if self.endpoints else Resolution.NO_ENDPOINTS

    def weights(self) -> dict[Address, float]:
        """Each endpoint's weight, for the balancer."""
        return {address: e.weight for address, e in self.endpoints.items()}
