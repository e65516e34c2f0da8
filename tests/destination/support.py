"""Builders for the destination tests: services, slices and pods as the API would hold them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from mesh.destination import Address, DiscoveryConfig, WeightedEndpoint
from mesh.k8s.objects import (
    Container,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    ObjectRef,
    OwnerRef,
    Pod,
    Service,
    ServicePort,
)

NS = "shop"
WEB_RS = OwnerRef("ReplicaSet", "web-5d8f7c9b4")
CONFIG = DiscoveryConfig(
    cluster_domain="east.example", trust_domain="mesh.example", control_plane_ns="linkerd"
)


def identity(sa: str, ns: str = NS) -> str:
    return f"{sa}.{ns}.serviceaccount.identity.linkerd.mesh.example"


def service(
    name: str = "web",
    *,
    ns: str = NS,
    cluster_ip: str = "10.96.0.10",
    ports: Sequence[ServicePort] = (ServicePort(80, "http", target_port=8080),),
    annotations: Mapping[str, str] | None = None,
) -> Service:
    return Service(
        namespace=ns,
        name=name,
        ports=tuple(ports),
        cluster_ip=cluster_ip,
        cluster_ips=(cluster_ip,) if cluster_ip not in ("", "None") else (),
        annotations=dict(annotations or {}),
    )


def pod(
    name: str,
    ip: str,
    *,
    ns: str = NS,
    sa: str = "web",
    meshed: bool = True,
    ports: Sequence[ContainerPort] = (ContainerPort(8080, "http"),),
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    owner: OwnerRef | None = WEB_RS,
    phase: str = "Running",
) -> Pod:
    containers = [Container("app", tuple(ports))]
    if meshed:
        containers.append(Container("linkerd-proxy", (ContainerPort(4143, "linkerd-proxy"),)))
    default_labels = {"app": "web"}
    if owner is not None and owner.kind == "ReplicaSet":
        default_labels["pod-template-hash"] = owner.name.rsplit("-", 1)[-1]
    return Pod(
        namespace=ns,
        name=name,
        service_account=sa,
        ip=ip,
        ips=(ip,),
        phase=phase,
        containers=tuple(containers),
        owners=(owner,) if owner else (),
        labels=dict(default_labels if labels is None else labels),
        annotations=dict(annotations or {}),
    )


def endpoint(p: Pod, *, ready: bool = True, zone: str = "", hostname: str = "") -> Endpoint:
    return Endpoint(
        addresses=(p.ip,),
        ready=ready,
        serving=ready,
        hostname=hostname,
        zone=zone,
        target=ObjectRef("Pod", p.namespace, p.name),
    )


def slice_of(
    svc: Service,
    endpoints: Sequence[Endpoint],
    *,
    name: str = "",
    ports: Sequence[EndpointPort] | None = None,
    address_type: str = "IPv4",
) -> EndpointSlice:
    if ports is None:
        ports = [
            EndpointPort(p.target_port if isinstance(p.target_port, int) else p.port, p.name)
            for p in svc.ports
        ]
    return EndpointSlice(
        namespace=svc.namespace,
        name=name or f"{svc.name}-abcde",
        service_name=svc.name,
        address_type=address_type,
        endpoints=tuple(endpoints),
        ports=tuple(ports),
    )


def expected(
    p: Pod,
    port: int = 8080,
    *,
    service: str | None = "web",
    zone: str = "",
    opaque: bool = False,
    meshed: bool = True,
    deployment: str | None = "web",
) -> WeightedEndpoint:
    """The endpoint the destination service should serve for ``p`` at ``port``."""
    labels = {"namespace": p.namespace, "pod": p.name, "serviceaccount": p.service_account}
    if service is not None:
        labels["service"] = service
    if "pod-template-hash" in p.labels:
        labels["pod_template_hash"] = p.labels["pod-template-hash"]
    if deployment is not None:
        labels["deployment"] = deployment
    if zone:
        labels["zone"] = zone
    ep = WeightedEndpoint(Address(p.ip, port), labels=labels)
    if meshed:
        ep = replace(
            ep,
            identity=identity(p.service_account, p.namespace),
            opaque=opaque,
            opaque_transport_port=4143 if opaque else None,
        )
    return ep
