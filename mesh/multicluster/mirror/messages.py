"""What the mirror core hears (events) and what it asks for (commands).

Rules: plain frozen values, no behaviour; the core (``core``) turns events into commands,
the asyncio layer (``controller``) produces the events and carries out the commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mesh.k8s.events import WatchEvent
from mesh.k8s.objects import EndpointSlice, ObjectKey, Service
from mesh.multicluster.mirror.desired import MirrorEndpoints, MirrorService
from mesh.multicluster.mirror.federated import Op
from mesh.multicluster.mirror.link import Link
from mesh.multicluster.mirror.liveness import ProbeOutcome

__all__ = [
    "ApplyEndpoints",
    "ApplyFederated",
    "ApplyService",
    "Command",
    "CommandFailed",
    "DeleteEndpoints",
    "DeleteMirror",
    "Event",
    "GatewayState",
    "LinkInvalid",
    "LinkUpdated",
    "LinksChanged",
    "LocalEvent",
    "Namespace",
    "ProbeResult",
    "RecordEvent",
    "RemoteEvent",
    "RemoteFailed",
    "Retry",
]


@dataclass(frozen=True)
class Namespace:
    """A local namespace (cluster-scoped; ``namespace`` is empty)."""

    name: str
    namespace: str = ""


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkUpdated:
    """The Link, valid, with its gateway addresses resolved to IPs."""

    link: Link
    gateway_ips: tuple[str, ...]


@dataclass(frozen=True)
class LinkInvalid:
    """The Link (or its credentials) cannot be used; ``reason`` is one CamelCase word."""

    reason: str
    message: str


@dataclass(frozen=True)
class LinksChanged:
    """The target clusters of every Link in the controller's namespace (valid or not)."""

    clusters: frozenset[str]


@dataclass(frozen=True)
class RemoteEvent:
    """A change in the target cluster's Services or EndpointSlices."""

    event: WatchEvent[Service] | WatchEvent[EndpointSlice]


@dataclass(frozen=True)
class LocalEvent:
    """A change in the local Services, mirror Endpoints or namespaces."""

    event: WatchEvent[Service] | WatchEvent[MirrorEndpoints] | WatchEvent[Namespace]


@dataclass(frozen=True)
class RemoteFailed:
    """Listing or watching the target failed; the watch retries by itself."""

    reason: str
    message: str


@dataclass(frozen=True)
class ProbeResult:
    """One probe of the gateway at ``address`` (``""``: the outcome counts for every address)."""

    outcome: ProbeOutcome
    address: str = ""


@dataclass(frozen=True)
class CommandFailed:
    """A command for the mirror ``key`` failed; the I/O layer sends ``Retry`` later."""

    key: ObjectKey
    message: str


@dataclass(frozen=True)
class Retry:
    """Ask again for whatever ``keys`` (mirror keys) still lack."""

    keys: tuple[ObjectKey, ...]


Event = (
    LinkUpdated
    | LinkInvalid
    | LinksChanged
    | RemoteEvent
    | LocalEvent
    | RemoteFailed
    | ProbeResult
    | CommandFailed
    | Retry
)

# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyService:
    service: MirrorService
    create: bool


@dataclass(frozen=True)
class ApplyEndpoints:
    endpoints: MirrorEndpoints


@dataclass(frozen=True)
class ApplyFederated:
    """Apply ``claim`` to ``<svc>-federated``: read it, ``federated.apply`` (a merge or a
    prune), write if changed (conditional on the resourceVersion read; a conflict reads
    again)."""

    claim: Op


@dataclass(frozen=True)
class DeleteMirror:
    """Delete the mirror Service ``key`` and its Endpoints."""

    key: ObjectKey
    why: str


@dataclass(frozen=True)
class DeleteEndpoints:
    key: ObjectKey


@dataclass(frozen=True)
class RecordEvent:
    """A Kubernetes Event on the Link."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class GatewayState:
    """Publish the gateway's state (``gateway_alive``) and the probe's latency."""

    alive: bool
    latency_ms: float | None


Command = (
    ApplyService
    | ApplyEndpoints
    | ApplyFederated
    | DeleteMirror
    | DeleteEndpoints
    | RecordEvent
    | GatewayState
)
