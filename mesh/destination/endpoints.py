"""Endpoint sets for discovery targets, and the updates that move a proxy between them.

``resolve`` turns a target and a cluster snapshot into a ``Resolution``: either
``Missing`` (no such service or address) or an ``EndpointSet`` (possibly empty).
``diff`` turns the resolution a proxy last saw and the current one into the
updates that bring it up to date. Both are pure.

Rules, after Linkerd's destination service:
- only ready endpoints are served; each is its pod IP and target port (the
  slice's port for the service port's name, else the service's targetPort,
  names resolved against the pod's container ports), weight 10000;
- a port the service does not declare is used as the target port itself;
- an endpoint carries a TLS identity and protocol hint only if its pod is
  meshed (has the proxy, no opt-out for that port);
- a port is opaque when the service's or the pod's ``opaque-ports`` lists it
  (the configured defaults when the annotation is absent);
- a gateway-mode mirror's endpoints are the remote gateway (see ``mirrors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mesh.destination.authority import IpTarget, ServiceTarget, Target
from mesh.destination.config import DEFAULT_WEIGHT, DiscoveryConfig
from mesh.destination.mirrors import gateway_endpoint, is_gateway_mirror, per_host_mirror
from mesh.destination.snapshot import ClusterSnapshot
from mesh.k8s.annotations import (
    DISABLE_IDENTITY,
    OPAQUE_PORTS,
    PROXY_CONTAINER,
    PROXY_VERSION,
    SKIP_INBOUND_PORTS,
    PortRanges,
    parse_ports,
)
from mesh.k8s.objects import Endpoint, EndpointSlice, Pod, Service, ServicePort

__all__ = [
    "Add",
    "Address",
    "EndpointSet",
    "Missing",
    "NoEndpoints",
    "Remove",
    "Resolution",
    "Update",
    "WeightedEndpoint",
    "diff",
    "is_meshed",
    "pod_endpoint",
    "pod_opaque_ports",
    "resolve",
    "service_endpoints",
    "service_opaque_ports",
]

_TEMPLATE_HASH = "pod-template-hash"
_SERVED_ADDRESS_TYPES = ("IPv4", "IPv6")


@dataclass(frozen=True, order=True)
class Address:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class WeightedEndpoint:
    """One address to balance over, with what the proxy should know about it."""

    address: Address
    weight: int = DEFAULT_WEIGHT
    labels: Mapping[str, str] = field(default_factory=dict)
    identity: str | None = None
    """The TLS identity to expect; set only for meshed endpoints."""
    opaque: bool = False
    """The port is opaque (a hint only meshed endpoints carry)."""
    opaque_transport_port: int | None = None
    """The peer proxy's inbound port, for meshed endpoints on opaque ports."""
    authority_override: str | None = None


@dataclass(frozen=True)
class Missing:
    """The target names no service, and no pod, this cluster knows."""


@dataclass(frozen=True)
class EndpointSet:
    """The target exists; these are its ready endpoints (maybe none)."""

    endpoints: Mapping[Address, WeightedEndpoint] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels common to the set: ``namespace`` and ``service``."""


Resolution = Missing | EndpointSet


@dataclass(frozen=True)
class Add:
    """Add or replace these endpoints."""

    endpoints: tuple[WeightedEndpoint, ...]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Remove:
    addresses: tuple[Address, ...]


@dataclass(frozen=True)
class NoEndpoints:
    """Forget every endpoint; ``exists`` says whether the target exists at all."""

    exists: bool


Update = Add | Remove | NoEndpoints


def is_meshed(pod: Pod) -> bool:
    """Whether the pod runs the mesh's proxy (its container, or the injector's annotation)."""
    return PROXY_VERSION in pod.annotations or any(
        c.name == PROXY_CONTAINER for c in pod.containers
    )


def _pod_port_names(pod: Pod) -> dict[str, list[int]]:
    names: dict[str, list[int]] = {}
    for container in pod.containers:
        for port in container.ports:
            if port.name:
                names.setdefault(port.name, []).append(port.port)
    return names


def pod_opaque_ports(pod: Pod, config: DiscoveryConfig) -> PortRanges:
    """The pod's opaque ports: its annotation (names are container ports), else the defaults."""
    value = pod.annotations.get(OPAQUE_PORTS)
    if value is None:
        return config.default_opaque_ports
    names = _pod_port_names(pod)
    return parse_ports(value, lambda name: names.get(name, ()))


def service_opaque_ports(service: Service, config: DiscoveryConfig) -> PortRanges:
    """The service's opaque ports: its annotation (names are its port names), else the defaults."""
    value = service.annotations.get(OPAQUE_PORTS)
    if value is None:
        return config.default_opaque_ports
    names: dict[str, list[int]] = {}
    for port in service.ports:
        if port.name:
            names.setdefault(port.name, []).append(port.port)
    return parse_ports(value, lambda name: names.get(name, ()))


def _owner_labels(pod: Pod) -> dict[str, str]:
    owner = pod.controller()
    if owner is None:
        return {}
    template_hash = pod.labels.get(_TEMPLATE_HASH, "")
    if owner.kind == "ReplicaSet" and template_hash and owner.name.endswith(f"-{template_hash}"):
        return {"deployment": owner.name.removesuffix(f"-{template_hash}")}
    return {owner.kind.lower(): owner.name}


def _pod_labels(pod: Pod) -> dict[str, str]:
    labels = {"namespace": pod.namespace, "pod": pod.name, "serviceaccount": pod.service_account}
    if _TEMPLATE_HASH in pod.labels:
        labels["pod_template_hash"] = pod.labels[_TEMPLATE_HASH]
    labels.update(_owner_labels(pod))
    return labels


def pod_endpoint(
    address: Address,
    pod: Pod | None,
    config: DiscoveryConfig,
    *,
    labels: Mapping[str, str] | None = None,
    opaque: bool = False,
) -> WeightedEndpoint:
    """The endpoint ``address`` served by ``pod`` (``None``: not a pod we know).

    ``opaque`` marks the port opaque whatever the pod says; the pod's own
    annotation can only add to it.
    """
    all_labels = dict(labels or {})
    if pod is None:
        return WeightedEndpoint(address, labels=all_labels)
    all_labels.update(_pod_labels(pod))
    skipped = parse_ports(pod.annotations.get(SKIP_INBOUND_PORTS, ""))
    if not is_meshed(pod) or address.port in skipped:
        return WeightedEndpoint(address, labels=all_labels)
    opaque = opaque or address.port in pod_opaque_ports(pod, config)
    identity = None
    if pod.annotations.get(DISABLE_IDENTITY, "").lower() != "true":
        identity = config.identity(pod.service_account, pod.namespace)
    return WeightedEndpoint(
        address,
        labels=all_labels,
        identity=identity,
        opaque=opaque,
        opaque_transport_port=config.proxy_inbound_port if opaque else None,
    )


def _target_port(
    service_port: ServicePort | None, requested: int, slice_: EndpointSlice, pod: Pod | None
) -> int | None:
    if service_port is None:
        return requested
    for port in slice_.ports:
        if port.name == service_port.name and port.protocol == service_port.protocol:
            return port.port
    target = service_port.target_port
    if target is None:
        return service_port.port
    if isinstance(target, int):
        return target
    return pod.container_port(target) if pod is not None else None


def _endpoint_pod(snapshot: ClusterSnapshot, endpoint: Endpoint) -> Pod | None:
    ref = endpoint.target
    if ref is None or ref.kind != "Pod":
        return None
    return snapshot.pod(ref.namespace, ref.name)


def service_endpoints(
    snapshot: ClusterSnapshot, config: DiscoveryConfig, service: Service, port: int, hostname: str
) -> EndpointSet:
    """The ready endpoints of ``port`` of ``service`` (of one ``hostname``, if given)."""
    set_labels = {"namespace": service.namespace, "service": service.name}
    service_port = service.port(port)
    opaque = port in service_opaque_ports(service, config)
    endpoints: dict[Address, WeightedEndpoint] = {}
    for slice_ in snapshot.slices(service.key):
        if slice_.address_type not in _SERVED_ADDRESS_TYPES:
            continue
        gateway = (
            gateway_endpoint(service, slice_, port) if is_gateway_mirror(service, slice_) else None
        )
        for endpoint in slice_.endpoints:
            if not endpoint.ready or not endpoint.addresses:
                continue
            if hostname and endpoint.hostname != hostname:
                continue
            pod = _endpoint_pod(snapshot, endpoint)
            ip = endpoint.addresses[0]
            if pod is None and per_host_mirror(service, ip, snapshot.service_by_ip) is not None:
                # A headless mirror's host: reach it through its per-host mirror (CONF-29).
                through = resolve(snapshot, config, IpTarget(ip, port))
                if isinstance(through, EndpointSet):
                    endpoints.update(through.endpoints)
                continue
            target_port = _target_port(service_port, port, slice_, pod)
            if target_port is None:
                continue
            address = Address(endpoint.addresses[0], target_port)
            labels = dict(set_labels)
            if endpoint.zone:
                labels["zone"] = endpoint.zone
            if gateway is not None and pod is None:
                labels.update(gateway.labels)
                endpoints[address] = WeightedEndpoint(
                    address,
                    labels=labels,
                    identity=gateway.identity,
                    authority_override=gateway.authority_override,
                )
                continue
            endpoints[address] = pod_endpoint(address, pod, config, labels=labels, opaque=opaque)
    return EndpointSet(endpoints, set_labels)


def resolve(snapshot: ClusterSnapshot, config: DiscoveryConfig, target: Target) -> Resolution:
    """What ``target`` resolves to in ``snapshot`` now."""
    if isinstance(target, ServiceTarget):
        service = snapshot.service(target.namespace, target.name)
        if service is None:
            return Missing()
        return service_endpoints(snapshot, config, service, target.port, target.hostname)
    assert isinstance(target, IpTarget)
    service = snapshot.service_by_ip(target.ip)
    if service is not None:
        return service_endpoints(snapshot, config, service, target.port, "")
    pod = snapshot.pod_by_ip(target.ip)
    if pod is None:
        return Missing()
    if pod.phase not in ("Running", "Pending") or pod.deleting:
        return EndpointSet({}, {"namespace": pod.namespace})
    address = Address(target.ip, target.port)
    labels = {"namespace": pod.namespace}
    return EndpointSet({address: pod_endpoint(address, pod, config, labels=labels)}, labels)


def _add(endpoints: Mapping[Address, WeightedEndpoint], labels: Mapping[str, str]) -> Add:
    return Add(tuple(endpoints[a] for a in sorted(endpoints)), labels)


def diff(old: Resolution | None, new: Resolution) -> list[Update]:
    """The updates that take a proxy that saw ``old`` (``None``: nothing yet) to ``new``.

    The first answer is always the whole of ``new``; later ones are empty when
    nothing a proxy can see changed. Removals come before additions.
    """
    if isinstance(new, Missing):
        return [] if isinstance(old, Missing) else [NoEndpoints(exists=False)]
    if not new.endpoints:
        shown_empty = isinstance(old, EndpointSet) and not old.endpoints
        return [] if shown_empty else [NoEndpoints(exists=True)]
    if not isinstance(old, EndpointSet) or not old.endpoints:
        return [_add(new.endpoints, new.labels)]
    updates: list[Update] = []
    removed = sorted(a for a in old.endpoints if a not in new.endpoints)
    if removed:
        updates.append(Remove(tuple(removed)))
    changed = {a: e for a, e in new.endpoints.items() if old.endpoints.get(a) != e}
    if changed:
        updates.append(_add(changed, new.labels))
    return updates
