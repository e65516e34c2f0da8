"""Destination profiles: what a proxy knows about a target besides its endpoints.

``profile`` is pure. A service target gets its fully qualified name and whether
its port is opaque; a pod IP gets that pod's endpoint, so the proxy can connect
directly with the right identity; an address nobody knows gets a bare endpoint,
so the proxy forwards to it as asked. A service (looked up by name or by
cluster IP) also carries its traffic split (``dst_overrides``, from a
TrafficSplit) or HTTPRoute rules (``http_routes``), computed by
``mesh.destination.splits``. Retry budgets are carried by the type but not yet
computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.destination.authority import IpTarget, ServiceTarget, Target
from mesh.destination.config import DiscoveryConfig
from mesh.destination.endpoints import (
    Address,
    EndpointSet,
    WeightedEndpoint,
    pod_endpoint,
    pod_opaque_ports,
    resolve,
    service_opaque_ports,
)
from mesh.destination.snapshot import ClusterSnapshot
from mesh.destination.splits import RouteEntry, SplitStore, WeightedDst, routing
from mesh.k8s.objects import Service

__all__ = ["Profile", "WeightedDst", "profile"]

_NO_SPLITS = SplitStore()


@dataclass(frozen=True)
class Profile:
    fully_qualified_name: str = ""
    opaque: bool = False
    endpoint: WeightedEndpoint | None = None
    dst_overrides: tuple[WeightedDst, ...] = ()
    http_routes: tuple[RouteEntry, ...] = ()


def _fqdn(service: Service, config: DiscoveryConfig) -> str:
    return f"{service.name}.{service.namespace}.svc.{config.cluster_domain}"


def _service_profile(
    snapshot: ClusterSnapshot, config: DiscoveryConfig, target: ServiceTarget, splits: SplitStore
) -> Profile:
    service = snapshot.service(target.namespace, target.name)
    opaque_ports = service_opaque_ports(service, config) if service else config.default_opaque_ports
    endpoint = None
    if target.hostname:
        resolution = resolve(snapshot, config, target)
        if isinstance(resolution, EndpointSet) and len(resolution.endpoints) == 1:
            endpoint = next(iter(resolution.endpoints.values()))
        return Profile(target.fqdn, target.port in opaque_ports, endpoint)
    split = (
        routing(snapshot, splits, service, target.port, config.cluster_domain)
        if service is not None
        else None
    )
    if not split:
        return Profile(target.fqdn, target.port in opaque_ports, endpoint)
    return Profile(
        target.fqdn,
        target.port in opaque_ports,
        endpoint,
        split.dst_overrides,
        split.http_routes,
    )


def profile(
    snapshot: ClusterSnapshot,
    config: DiscoveryConfig,
    target: Target,
    splits: SplitStore = _NO_SPLITS,
) -> Profile:
    """The profile of ``target`` in ``snapshot`` now, with its traffic split from ``splits``."""
    if isinstance(target, ServiceTarget):
        return _service_profile(snapshot, config, target, splits)
    assert isinstance(target, IpTarget)
    service = snapshot.service_by_ip(target.ip)
    if service is not None:
        opaque = target.port in service_opaque_ports(service, config)
        split = routing(snapshot, splits, service, target.port, config.cluster_domain)
        return Profile(_fqdn(service, config), opaque, None, split.dst_overrides, split.http_routes)
    address = Address(target.ip, target.port)
    pod = snapshot.pod_by_ip(target.ip)
    if pod is None:
        opaque = target.port in config.default_opaque_ports
        return Profile(opaque=opaque, endpoint=WeightedEndpoint(address))
    endpoint = pod_endpoint(address, pod, config, labels={"namespace": pod.namespace})
    return Profile(opaque=target.port in pod_opaque_ports(pod, config), endpoint=endpoint)
