"""Builders for the mirror tests: remote Services, slices and Links as the API would hold them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mesh.k8s.objects import Endpoint, EndpointSlice, Service, ServicePort
from mesh.multicluster.mirror.link import Link, parse_link

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
