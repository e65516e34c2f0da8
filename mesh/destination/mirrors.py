"""Gateway-mode mirrors: a mirror Service's endpoints are the target cluster's gateway.

The service mirror writes, for an exported remote Service, a selectorless
Service ``<svc>-<cluster>`` labelled ``mirror.linkerd.io/mirrored-service=true``
and an Endpoints object listing the remote gateway's addresses, annotated with
the identity the gateway presents and the remote service's FQDN. The
controller-manager's EndpointSlice mirroring copies those labels and
annotations onto the EndpointSlices discovery reads.

Rules, after Linkerd's destination service:
- an endpoint of such a slice (it names no pod) is the gateway: its TLS
  identity is the slice's ``remote-gateway-identity`` (none if empty: plaintext);
- its ``authority_override`` is ``<remote-svc-fq-name>:<requested port>`` (the
  slice's annotation, else the Service's), so the gateway can route it;
- it carries the metric labels ``target_cluster``, ``target_service`` and
  ``target_service_namespace`` where they are known;
- it is never an opaque-transport endpoint: the gateway's port is its own.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mesh.k8s.objects import EndpointSlice, Service
from mesh.multicluster.labels import (
    CLUSTER_NAME,
    HEADLESS_MIRROR_SVC_NAME,
    MIRRORED_SERVICE,
    REMOTE_GATEWAY_IDENTITY,
    REMOTE_SVC_FQ_NAME,
)

__all__ = [
    "GatewayEndpoint",
    "gateway_endpoint",
    "is_gateway_mirror",
    "per_host_mirror",
    "remote_service_labels",
]


@dataclass(frozen=True)
class GatewayEndpoint:
    """What a proxy must know of a gateway endpoint beyond its address."""

    identity: str | None
    authority_override: str | None
    labels: dict[str, str] = field(default_factory=dict)


def is_gateway_mirror(service: Service, slice_: EndpointSlice) -> bool:
    """Whether ``slice_`` holds gateway endpoints of the mirror ``service``."""
    if service.labels.get(MIRRORED_SERVICE) != "true" or service.selector:
        return False
    return REMOTE_GATEWAY_IDENTITY in slice_.annotations


def remote_service_labels(service: Service, fq_name: str) -> dict[str, str]:
    """``target_cluster``, ``target_service`` and ``target_service_namespace`` where known."""
    labels: dict[str, str] = {}
    cluster = service.labels.get(CLUSTER_NAME, "")
    if cluster:
        labels["target_cluster"] = cluster
    parts = fq_name.split(".")
    if len(parts) >= 3 and parts[2] == "svc" and parts[0] and parts[1]:
        labels["target_service"] = parts[0]
        labels["target_service_namespace"] = parts[1]
    return labels


def _fq_name(service: Service, slice_: EndpointSlice) -> str:
    name = slice_.annotations.get(REMOTE_SVC_FQ_NAME) or service.annotations.get(
        REMOTE_SVC_FQ_NAME, ""
    )
    return name.strip().rstrip(".")


def gateway_endpoint(service: Service, slice_: EndpointSlice, port: int) -> GatewayEndpoint:
    """The identity, authority override and labels of a gateway serving ``port`` of ``service``."""
    identity = slice_.annotations.get(REMOTE_GATEWAY_IDENTITY, "").strip() or None
    fq_name = _fq_name(service, slice_)
    return GatewayEndpoint(
        identity=identity,
        authority_override=f"{fq_name}:{port}" if fq_name else None,
        labels=remote_service_labels(service, fq_name),
    )


def per_host_mirror(
    service: Service, address: str, by_ip: Callable[[str], Service | None]
) -> Service | None:
    """The per-host mirror behind ``address`` of the headless mirror ``service`` (CONF-29).

    A headless mirror's endpoints are its per-host mirrors' cluster IPs; a proxy must reach
    them through the per-host mirror's own (gateway) endpoints, not the IP in plaintext.
    """
    if service.labels.get(MIRRORED_SERVICE) != "true" or service.selector or not service.headless:
        return None
    host = by_ip(address)
    if host is None or host.namespace != service.namespace:
        return None
    return host if host.annotations.get(HEADLESS_MIRROR_SVC_NAME) == service.name else None
