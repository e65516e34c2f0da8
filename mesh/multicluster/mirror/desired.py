"""What the local cluster should hold for one remote Service: its mirror Service and Endpoints.

Rules (CONF-1..9): the mirror is ``<svc>-<cluster>`` in the remote's namespace, a plain
ClusterIP Service (no selector, no nodePort, the API server allocates its IP) with the
remote's ports (name, protocol, port, targetPort). Remote labels under ``mirror.linkerd.io/``
are never copied, so a mirror is never exported again; topology annotations are never
copied; the Link's exclusions drop the rest. Gateway-mode Endpoints carry every gateway
address, sorted, with each service port's name on the gateway port; no subsets while the
remote Service has no ready endpoint, and notReadyAddresses while the gateway is down.
Remote-discovery mirrors (pod-to-pod) have no Endpoints here.
A headless mirror (``headless``) is a ``MirrorService`` with ``headless`` set.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.k8s.objects import ObjectKey, Service
from mesh.multicluster import labels
from mesh.multicluster.mirror import naming
from mesh.multicluster.mirror.link import Link, excluded

__all__ = [
    "MirrorEndpoints",
    "MirrorPort",
    "MirrorService",
    "Mode",
    "Unmirrorable",
    "endpoints_current",
    "is_mirror",
    "mirror_endpoints",
    "mirror_mode",
    "mirror_service",
    "service_current",
]

NEVER_COPIED_ANNOTATIONS = frozenset(
    {*labels.TOPOLOGY_ANNOTATIONS, "kubectl.kubernetes.io/last-applied-configuration"}
)
"""Topology hints (CONF-7) and kubectl's record of the remote's own manifest."""


class Mode(enum.Enum):
    GATEWAY = "gateway"
    REMOTE_DISCOVERY = "remote-discovery"


class Unmirrorable(Exception):
    """A selected remote Service that cannot be mirrored; ``reason`` is a CamelCase word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class MirrorPort:
    name: str
    protocol: str
    port: int
    target_port: int | str | None = None


@dataclass(frozen=True)
class MirrorService:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[MirrorPort, ...] = ()
    headless: bool = False

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    def manifest(self) -> dict[str, Any]:
        """The object to apply: no clusterIP (the API server allocates one) unless headless."""
        ports: list[dict[str, Any]] = []
        for p in self.ports:
            port: dict[str, Any] = {"name": p.name, "protocol": p.protocol, "port": p.port}
            if not p.name:
                del port["name"]
            if p.target_port is not None:
                port["targetPort"] = p.target_port
            ports.append(port)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": dict(self.labels),
                "annotations": dict(self.annotations),
            },
            "spec": {"type": "ClusterIP", "ports": ports}
            | ({"clusterIP": "None"} if self.headless else {}),
        }


@dataclass(frozen=True)
class EndpointsPort:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class MirrorEndpoints:
    """An Endpoints object with at most one subset (one port list for every address)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ready: tuple[str, ...] = ()
    not_ready: tuple[str, ...] = ()
    ports: tuple[EndpointsPort, ...] = ()
    hostnames: Mapping[str, str] = field(default_factory=dict)
    """Address -> hostname (headless mirrors only)."""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    @property
    def empty(self) -> bool:
        return not self.ready and not self.not_ready

    def manifest(self) -> dict[str, Any]:
        subsets: list[dict[str, Any]] = []
        if not self.empty:
            subset: dict[str, Any] = {
                "ports": [
                    {"name": p.name, "port": p.port, "protocol": p.protocol}
                    if p.name
                    else {"port": p.port, "protocol": p.protocol}
                    for p in self.ports
                ]
            }
            if self.ready:
                subset["addresses"] = [self._address(ip) for ip in self.ready]
            if self.not_ready:
                subset["notReadyAddresses"] = [self._address(ip) for ip in self.not_ready]
            subsets.append(subset)
        return {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": dict(self.labels),
                "annotations": dict(self.annotations),
            },
            "subsets": subsets,
        }

    def _address(self, ip: str) -> dict[str, str]:
        host = self.hostnames.get(ip)
        return {"ip": ip, "hostname": host} if host else {"ip": ip}


def is_mirror(service: Service) -> bool:
    """A mirror made by some controller: never mirrored again (CONF-6)."""
    return service.labels.get(labels.MIRRORED_SERVICE) == "true"


def mirror_mode(remote: Service, link: Link) -> Mode | None:
    """How ``link`` mirrors ``remote``: gateway mode, pod-to-pod, or not at all (CONF-16)."""
    if is_mirror(remote):
        return None
    if link.selector.matches(remote.labels):
        return Mode.GATEWAY
    if link.remote_discovery_selector.matches(remote.labels):
        return Mode.REMOTE_DISCOVERY
    return None


def _mirror_labels(remote: Service, link: Link, mode: Mode) -> dict[str, str]:
    copied = {
        k: v
        for k, v in remote.labels.items()
        if not k.startswith(labels.PREFIX) and not excluded(k, link.excluded_labels)
    }
    copied[labels.MIRRORED_SERVICE] = "true"
    copied[labels.CLUSTER_NAME] = link.target_cluster_name
    if mode is Mode.REMOTE_DISCOVERY:
        copied[labels.REMOTE_DISCOVERY] = link.target_cluster_name
        copied[labels.REMOTE_SERVICE] = remote.name
    return copied


def mirror_service(remote: Service, link: Link, mode: Mode) -> MirrorService:
    """The mirror of ``remote``; ``Unmirrorable`` says why there cannot be one."""
    try:
        name = naming.mirror_name(remote.name, link.target_cluster_name)
    except naming.InvalidName as e:
        raise Unmirrorable("InvalidMirrorName", str(e)) from None
    if remote.type == "ExternalName":
        raise Unmirrorable("UnsupportedServiceType", "ExternalName Services cannot be mirrored")
    if not remote.ports:
        raise Unmirrorable("NoPorts", f"{remote.key} has no ports to mirror")
    annotations = {
        k: v
        for k, v in remote.annotations.items()
        if k not in NEVER_COPIED_ANNOTATIONS and not excluded(k, link.excluded_annotations)
    }
    annotations[labels.REMOTE_SVC_FQ_NAME] = naming.remote_fq_name(
        remote.name, remote.namespace, link.target_cluster_domain
    )
    annotations[labels.REMOTE_RESOURCE_VERSION] = remote.resource_version
    return MirrorService(
        namespace=remote.namespace,
        name=name,
        labels=_mirror_labels(remote, link, mode),
        annotations=annotations,
        ports=tuple(MirrorPort(p.name, p.protocol, p.port, p.target_port) for p in remote.ports),
    )


def _address_order(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (2, 0, address)
    return (ip.version, int(ip), address)


def mirror_endpoints(
    mirror: MirrorService,
    link: Link,
    gateway_addresses: tuple[str, ...],
    *,
    remote_ready: bool,
    gateway_alive: bool,
    dead: frozenset[str] = frozenset(),
) -> MirrorEndpoints:
    """The gateway-mode Endpoints of ``mirror`` (CONF-8, 9, 10).

    ``gateway_addresses`` are the Link's, resolved to IPs by the caller; those in ``dead``
    (failed their probes) are not ready, and all are when ``gateway_alive`` is false.
    """
    ep_labels = dict(mirror.labels)
    annotations = {
        labels.REMOTE_GATEWAY_IDENTITY: link.gateway_identity,
        labels.REMOTE_SVC_FQ_NAME: mirror.annotations[labels.REMOTE_SVC_FQ_NAME],
    }
    addresses = tuple(sorted(set(gateway_addresses), key=_address_order))
    if not remote_ready or not addresses or link.gateway_port is None:
        return MirrorEndpoints(mirror.namespace, mirror.name, ep_labels, annotations)
    ports = tuple(EndpointsPort(p.name, link.gateway_port, p.protocol) for p in mirror.ports)
    return MirrorEndpoints(
        mirror.namespace,
        mirror.name,
        ep_labels,
        annotations,
        ready=tuple(a for a in addresses if a not in dead) if gateway_alive else (),
        not_ready=tuple(a for a in addresses if a in dead) if gateway_alive else addresses,
        ports=ports,
    )


def _norm_ports(ports: Iterable[Any]) -> frozenset[tuple[str, str, int, str]]:
    return frozenset(
        (p.name, p.protocol, p.port, str(p.target_port if p.target_port is not None else p.port))
        for p in ports
    )


def _subset(want: Any, have: Any) -> bool:
    return all(have.get(k) == v for k, v in want.items())


def service_current(observed: Service, desired: MirrorService) -> bool:
    """Whether ``observed`` already is ``desired`` in every field the controller owns."""
    return (
        _subset(desired.annotations, observed.annotations)
        and _subset(desired.labels, observed.labels)
        and _norm_ports(observed.ports) == _norm_ports(desired.ports)
        and observed.headless == desired.headless
    )


def endpoints_current(observed: MirrorEndpoints, desired: MirrorEndpoints) -> bool:
    return (
        sorted(observed.ready) == sorted(desired.ready)
        and sorted(observed.not_ready) == sorted(desired.not_ready)
        and (desired.empty or set(observed.ports) == set(desired.ports))
        and _subset(desired.annotations, observed.annotations)
        and _subset(desired.labels, observed.labels)
        and dict(observed.hostnames) == dict(desired.hostnames)
    )
