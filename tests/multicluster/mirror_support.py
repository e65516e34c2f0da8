"""Builders for the mirror tests: remote Services, slices and Links as the API would hold them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.objects import Endpoint, EndpointSlice, ObjectKey, Service, ServicePort
from mesh.multicluster.mirror.core import MirrorCore
from mesh.multicluster.mirror.desired import MirrorEndpoints, MirrorService
from mesh.multicluster.mirror.federated import Op, apply, view_of
from mesh.multicluster.mirror.link import Link, parse_link
from mesh.multicluster.mirror.messages import (
    ApplyEndpoints,
    ApplyFederated,
    ApplyService,
    Command,
    DeleteEndpoints,
    DeleteMirror,
    Event,
    LinkUpdated,
    LocalEvent,
    Namespace,
    RemoteEvent,
)

CLUSTER = "east"
DOMAIN = "east.local"
GATEWAY_IDENTITY = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.mesh"
EXPORTED = {"mirror.linkerd.io/exported": "true"}


def link_obj(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "targetClusterName": CLUSTER,
        "targetClusterDomain": DOMAIN,
        "targetClusterLinkerdNamespace": "linkerd",
        "clusterCredentialsSecret": f"cluster-credentials-{CLUSTER}",
        "gatewayAddress": "172.30.1.20,172.30.1.3",
        "gatewayPort": "4143",
        "gatewayIdentity": GATEWAY_IDENTITY,
        "probeSpec": {
            "path": "/ready",
            "port": "4191",
            "period": "3s",
            "failureThreshold": "3",
            "timeout": "30s",
        },
        "selector": {"matchLabels": dict(EXPORTED)},
        "remoteDiscoverySelector": {
            "matchLabels": {"mirror.linkerd.io/exported": "remote-discovery"}
        },
        "federatedServiceSelector": {"matchLabels": {"mirror.linkerd.io/federated": "member"}},
    }
    base.update(spec)
    return {
        "apiVersion": "multicluster.linkerd.io/v1alpha3",
        "kind": "Link",
        "metadata": {"name": CLUSTER, "namespace": "linkerd-multicluster"},
        "spec": {k: v for k, v in base.items() if v is not None},
    }


def link(**spec: Any) -> Link:
    return parse_link(link_obj(**spec))


def remote_service(
    name: str = "web",
    *,
    ns: str = "shop",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    ports: Sequence[ServicePort] = (ServicePort(80, "http", "TCP", 8080),),
    rv: str = "100",
    type_: str = "ClusterIP",
) -> Service:
    return Service(
        namespace=ns,
        name=name,
        ports=tuple(ports),
        cluster_ip="10.97.0.10",
        cluster_ips=("10.97.0.10",),
        type=type_,
        selector={"app": name},
        labels=dict(EXPORTED if labels is None else labels),
        annotations=dict(annotations or {}),
        resource_version=rv,
    )


def remote_slice(
    service: str, *, ns: str = "shop", ready: bool = True, name: str = ""
) -> EndpointSlice:
    return EndpointSlice(
        namespace=ns,
        name=name or f"{service}-abcde",
        service_name=service,
        endpoints=(Endpoint(("10.23.0.5",), ready=ready),),
    )


def cluster_ip_of(name: str) -> str:
    """A stable, distinct cluster IP per Service name, as the local API server would allocate."""
    return f"10.96.{len(name)}.{sum(map(ord, name)) % 250 + 1}"


def as_service(svc: MirrorService, *, rv: str = "1") -> Service:
    """The Service the local API server would hold after applying ``svc``."""
    return Service(
        namespace=svc.namespace,
        name=svc.name,
        ports=tuple(ServicePort(p.port, p.name, p.protocol, p.target_port) for p in svc.ports),
        cluster_ip="None" if svc.headless else cluster_ip_of(svc.name),
        cluster_ips=() if svc.headless else (cluster_ip_of(svc.name),),
        labels=dict(svc.labels),
        annotations=dict(svc.annotations),
        resource_version=rv,
    )


def apply_claim_to(observed: Service | None, claim: Op, *, rv: str = "1") -> Service | None:
    """What the local API server holds after ``claim`` (a merge or a prune) on ``observed``."""
    view = view_of(observed) if observed is not None else None
    nxt = apply(view, claim)
    if nxt is view:
        return observed
    if nxt is None:
        return None
    key = claim.key
    return Service(
        namespace=key.namespace,
        name=key.name,
        ports=tuple(nxt.ports),
        cluster_ip="10.96.9.9",
        cluster_ips=("10.96.9.9",),
        labels=dict(nxt.labels),
        annotations=dict(nxt.annotations),
        resource_version=rv,
        created=observed.created if observed is not None else "2026-02-01T00:00:00Z",
    )


class Driver:
    """Feeds a ``MirrorCore`` and plays the local API server for the commands it returns."""

    def __init__(self, core: MirrorCore) -> None:
        self.core = core
        self.log: list[Command] = []
        self.federated: dict[ObjectKey, Service] = {}
        """Federated Services as the local API server holds them."""

    def feed(self, event: Event) -> list[Command]:
        out = self.core.handle(event)
        self.log.extend(out)
        return out

    def settle(self, commands: list[Command]) -> list[Command]:
        """Apply ``commands`` to the local cluster and feed the watch events back, until quiet."""
        more: list[Command] = []
        for command in commands:
            match command:
                case ApplyService(svc, _):
                    more += self.feed(LocalEvent(Upserted(as_service(svc))))
                case ApplyEndpoints(eps):
                    more += self.feed(LocalEvent(Upserted(eps)))
                case DeleteMirror(key, _):
                    more += self.feed(LocalEvent(Deleted(Service(key.namespace, key.name))))
                    more += self.feed(LocalEvent(Deleted(MirrorEndpoints(key.namespace, key.name))))
                case DeleteEndpoints(key):
                    more += self.feed(LocalEvent(Deleted(MirrorEndpoints(key.namespace, key.name))))
                case ApplyFederated(claim):
                    old = self.federated.get(claim.key)
                    new = apply_claim_to(old, claim, rv=str(len(self.log)))
                    if new is None:
                        self.federated.pop(claim.key, None)
                        more += self.feed(
                            LocalEvent(Deleted(Service(claim.key.namespace, claim.key.name)))
                        )
                    elif new is not old:
                        self.federated[claim.key] = new
                        more += self.feed(LocalEvent(Upserted(new)))
                case _:
                    pass
        return self.settle(more) if more else []


def synced_core(
    remote: Sequence[Service] = (),
    slices: Sequence[EndpointSlice] = (),
    local: Sequence[Service] = (),
    endpoints: Sequence[MirrorEndpoints] = (),
    namespaces: Sequence[str] = ("shop", "default"),
    lk: Link | None = None,
) -> tuple[Driver, list[Command]]:
    """A core that has read the Link and listed everything; the commands of its first pass."""
    lk = lk or link()
    driver = Driver(MirrorCore(CLUSTER, clock=lambda: "2026-01-01T00:00:00Z"))
    out: list[Command] = []
    out += driver.feed(LinkUpdated(lk, lk.gateway_addresses))
    out += driver.feed(LocalEvent(Listed(Service, tuple(local))))
    out += driver.feed(LocalEvent(Listed(MirrorEndpoints, tuple(endpoints))))
    out += driver.feed(LocalEvent(Listed(Namespace, tuple(Namespace(n) for n in namespaces))))
    out += driver.feed(RemoteEvent(Listed(EndpointSlice, tuple(slices))))
    out += driver.feed(RemoteEvent(Listed(Service, tuple(remote))))
    return driver, out
