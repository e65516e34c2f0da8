"""Typed snapshots of the Kubernetes objects the mesh reads.

Frozen dataclasses holding only the fields the mesh's cores use, so the cores
are pure functions of plain values. ``mesh.k8s.convert`` builds them from
lightkube models at the edge, where the client is; tests build them directly.
Label and annotation mappings are never mutated once an object is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Container",
    "ContainerPort",
    "Endpoint",
    "EndpointPort",
    "EndpointSlice",
    "HttpProbe",
    "KubeObject",
    "ObjectKey",
    "ObjectRef",
    "OwnerRef",
    "Pod",
    "Service",
    "ServicePort",
]


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Where a namespaced object lives: ``namespace/name``."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class KubeObject(Protocol):
    """What every snapshot has: the namespace and name that key it."""

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class ObjectRef:
    """A reference to another object, as an EndpointSlice's ``targetRef``."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class OwnerRef:
    """One of an object's ``ownerReferences``."""

    kind: str
    name: str
    controller: bool = True


@dataclass(frozen=True)
class ServicePort:
    """A Service port; ``target_port`` is a number, a container port name, or ``None`` (= port)."""

    port: int
    name: str = ""
    protocol: str = "TCP"
    target_port: int | str | None = None


@dataclass(frozen=True)
class Service:
    """A Service. ``cluster_ip`` is ``""`` when unallocated and ``"None"`` when headless."""

    namespace: str
    name: str
    ports: tuple[ServicePort, ...] = ()
    cluster_ip: str = ""
    cluster_ips: tuple[str, ...] = ()
    type: str = "ClusterIP"
    selector: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str = ""
    created: str = ""
    """``metadata.creationTimestamp`` as RFC 3339 (``2026-01-01T00:00:00Z``); sorts by age."""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    def addresses(self) -> tuple[str, ...]:
        """The service's allocated cluster IPs (none when headless or unallocated)."""
        ips = self.cluster_ips or ((self.cluster_ip,) if self.cluster_ip else ())
        return tuple(ip for ip in ips if ip and ip != "None")

    def port(self, number: int) -> ServicePort | None:
        """The port numbered ``number``, if the service has one (TCP preferred)."""
        matches = [p for p in self.ports if p.port == number]
        tcp = [p for p in matches if p.protocol == "TCP"]
        return next(iter(tcp or matches), None)


@dataclass(frozen=True)
class EndpointPort:
    """A port of an EndpointSlice: the service port's name, with the number resolved per pod."""

    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of an EndpointSlice. ``ready`` is already defaulted (unset means ready)."""

    addresses: tuple[str, ...]
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    hostname: str = ""
    node_name: str = ""
    zone: str = ""
    target: ObjectRef | None = None


@dataclass(frozen=True)
class EndpointSlice:
    """An EndpointSlice; ``service_name`` is its ``kubernetes.io/service-name`` label."""

    namespace: str
    name: str
    service_name: str = ""
    address_type: str = "IPv4"
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    @property
    def service_key(self) -> ObjectKey | None:
        return ObjectKey(self.namespace, self.service_name) if self.service_name else None


@dataclass(frozen=True)
class ContainerPort:
    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class HttpProbe:
    """The ``httpGet`` of a container's liveness, readiness or startup probe.

    ``port`` is a number or the name of one of the container's ports, as written;
    ``path`` defaults to ``/``.
    """

    port: int | str
    path: str = "/"


@dataclass(frozen=True)
class Container:
    """A container: its declared ports and its probes' ``httpGet`` (exec and tcp aside)."""

    name: str
    ports: tuple[ContainerPort, ...] = ()
    http_probes: tuple[HttpProbe, ...] = ()

    def probe_port(self, probe: HttpProbe) -> int | None:
        """The number ``probe`` targets: its own, or that of the container port it names."""
        if isinstance(probe.port, int):
            return probe.port
        if probe.port.isdigit():
            return int(probe.port)
        return next((p.port for p in self.ports if p.name == probe.port), None)


@dataclass(frozen=True)
class Pod:
    """A Pod. ``containers`` include native sidecars (init containers that keep running)."""

    namespace: str
    name: str
    service_account: str = "default"
    ip: str = ""
    ips: tuple[str, ...] = ()
    phase: str = "Running"
    host_network: bool = False
    node_name: str = ""
    deleting: bool = False
    containers: tuple[Container, ...] = ()
    owners: tuple[OwnerRef, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    def addresses(self) -> tuple[str, ...]:
        """The pod's IPs, primary first."""
        ips = self.ips or ((self.ip,) if self.ip else ())
        return tuple(dict.fromkeys(ip for ip in ips if ip))

    def container_port(self, name: str) -> int | None:
        """The number of the container port called ``name``, if any container declares one."""
        for container in self.containers:
            for port in container.ports:
                if port.name == name:
                    return port.port
        return None

    def controller(self) -> OwnerRef | None:
        """The owner that controls the pod, if any."""
        return next((o for o in self.owners if o.controller), None)
