"""Endpoints of services discovered in other clusters: remote-discovery mirrors and
federated services (pure).

A local Service asks for remote discovery in one of two forms (Linkerd's):

- a remote-discovery mirror ``<svc>-<cluster>``, labelled
  ``multicluster.linkerd.io/remote-discovery=<cluster>`` and
  ``multicluster.linkerd.io/remote-service=<svc>``;
- a federated service ``<svc>-federated``, annotated
  ``multicluster.linkerd.io/remote-discovery: <svc>@<c1>,<svc>@<c2>`` and, when the
  local cluster has a member, ``multicluster.linkerd.io/local-discovery: <svc>``.

Rules:
- namespace sameness: ``svc@cluster`` is Service ``svc`` in the *same namespace* of
  ``cluster``; its endpoints are computed as for a local service, in that cluster's
  snapshot, with that cluster's trust domain (so each remote pod carries the identity
  its own proxy has) and the requested port;
- every remote endpoint carries ``target_cluster``, ``target_service`` and
  ``target_service_namespace`` (the proxy exports them as ``dst_*``, CONF-27); the
  set's labels are the local Service's ``namespace`` and ``service``;
- a mirror whose cluster is not found answers ``RemoteMissing`` (CONF-26); a
  federated service leaves such a member out (the others still serve);
- while the Links have not been listed yet, the answer is an empty set, not missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.destination.authority import IpTarget, ServiceTarget, Target
from mesh.destination.config import DiscoveryConfig
from mesh.destination.endpoints import (
    Address,
    EndpointSet,
    Missing,
    Resolution,
    WeightedEndpoint,
    resolve,
    service_endpoints,
)
from mesh.destination.remote import RemoteClusters, RemoteView
from mesh.destination.snapshot import ClusterSnapshot
from mesh.k8s.objects import Service
from mesh.multicluster.labels import LOCAL_DISCOVERY, REMOTE_DISCOVERY, REMOTE_SERVICE

__all__ = [
    "Member",
    "RemoteMissing",
    "RemoteSpec",
    "remote_spec",
    "resolve_with_remotes",
]


@dataclass(frozen=True)
class RemoteMissing(Missing):
    """A remote-discovery mirror whose cluster discovery cannot reach (CONF-26)."""

    cluster: str = ""
    reason: str = ""

    @property
    def message(self) -> str:
        return f"remote cluster not found: {self.cluster} ({self.reason})"


@dataclass(frozen=True)
class Member:
    service: str
    cluster: str


@dataclass(frozen=True)
class RemoteSpec:
    """Where a local Service's endpoints really are."""

    members: tuple[Member, ...]
    local: str | None = None
    federated: bool = False


def _parse_members(value: str) -> tuple[Member, ...]:
    members = []
    for item in value.split(","):
        svc, at, cluster = item.strip().partition("@")
        if at and svc and cluster:
            members.append(Member(svc, cluster))
    return tuple(members)


def remote_spec(service: Service) -> RemoteSpec | None:
    """The remote members of ``service``, if it is a remote-discovery mirror or federated."""
    cluster = service.labels.get(REMOTE_DISCOVERY, "").strip()
    if cluster:
        remote = service.labels.get(REMOTE_SERVICE, "").strip()
        if not remote:
            return None
        return RemoteSpec((Member(remote, cluster),))
    annotation = service.annotations.get(REMOTE_DISCOVERY)
    local = service.annotations.get(LOCAL_DISCOVERY, "").strip() or None
    if annotation is None and local is None:
        return None
    return RemoteSpec(_parse_members(annotation or ""), local, federated=True)


def _member_labels(member: Member, namespace: str) -> dict[str, str]:
    return {
        "target_cluster": member.cluster,
        "target_service": member.service,
        "target_service_namespace": namespace,
    }


def _member_endpoints(
    view: RemoteView, member: Member, service: Service, port: int, hostname: str
) -> dict[Address, WeightedEndpoint]:
    remote = view.snapshot.service(service.namespace, member.service)
    if remote is None:
        return {}
    found = service_endpoints(view.snapshot, view.config, remote, port, hostname)
    extra = _member_labels(member, service.namespace)
    local_set = {"namespace": service.namespace, "service": service.name}
    out: dict[Address, WeightedEndpoint] = {}
    for address, endpoint in found.endpoints.items():
        labels = {**endpoint.labels, **local_set, **extra}
        out[address] = WeightedEndpoint(
            address,
            weight=endpoint.weight,
            labels=labels,
            identity=endpoint.identity,
            opaque=endpoint.opaque,
            opaque_transport_port=endpoint.opaque_transport_port,
            authority_override=endpoint.authority_override,
        )
    return out


def _resolve_remote(
    snapshot: ClusterSnapshot,
    config: DiscoveryConfig,
    remotes: RemoteClusters,
    service: Service,
    spec: RemoteSpec,
    port: int,
    hostname: str,
) -> Resolution:
    set_labels = {"namespace": service.namespace, "service": service.name}
    endpoints: dict[Address, WeightedEndpoint] = {}
    for member in spec.members:
        found = remotes.find(member.cluster)
        if found is None:
            continue
        if isinstance(found, str):
            if spec.federated:
                continue
            return RemoteMissing(member.cluster, found)
        endpoints.update(_member_endpoints(found, member, service, port, hostname))
    if spec.local is not None:
        local = snapshot.service(service.namespace, spec.local)
        if local is not None:
            endpoints.update(service_endpoints(snapshot, config, local, port, hostname).endpoints)
    return EndpointSet(endpoints, set_labels)


def resolve_with_remotes(
    snapshot: ClusterSnapshot,
    config: DiscoveryConfig,
    remotes: RemoteClusters | None,
    target: Target,
) -> Resolution:
    """``resolve``, except that remote-discovery mirrors and federated services are
    answered from the clusters they name."""
    if remotes is not None:
        service: Service | None = None
        hostname = ""
        if isinstance(target, ServiceTarget):
            service = snapshot.service(target.namespace, target.name)
            hostname = target.hostname
        elif isinstance(target, IpTarget):
            service = snapshot.service_by_ip(target.ip)
        spec = remote_spec(service) if service is not None else None
        if service is not None and spec is not None:
            return _resolve_remote(snapshot, config, remotes, service, spec, target.port, hostname)
    return resolve(snapshot, config, target)
