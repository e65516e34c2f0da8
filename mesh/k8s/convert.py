"""Convert lightkube models into the mesh's typed snapshots.

The only place the mesh reads lightkube's object models; everything past here
sees ``mesh.k8s.objects``. Absent fields become the Kubernetes defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.models import core_v1 as core_models
from lightkube.models import discovery_v1 as discovery_models
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1, discovery_v1

from mesh.k8s.objects import (
    Container,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    HttpProbe,
    ObjectRef,
    OwnerRef,
    Pod,
    Service,
    ServicePort,
)

__all__ = ["endpoint_slice", "pod", "service"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _meta(meta: ObjectMeta | None) -> ObjectMeta:
    return meta if meta is not None else ObjectMeta()


def _strings(mapping: Mapping[str, str] | None) -> dict[str, str]:
    return dict(mapping or {})


def _service_port(port: core_models.ServicePort) -> ServicePort:
    return ServicePort(
        port=port.port,
        name=port.name or "",
        protocol=port.protocol or "TCP",
        target_port=port.targetPort,
    )


def service(obj: core_v1.Service) -> Service:
    """The snapshot of a Service."""
    meta = _meta(obj.metadata)
    spec = obj.spec or core_models.ServiceSpec()
    return Service(
        namespace=meta.namespace or "",
        name=meta.name or "",
        ports=tuple(_service_port(p) for p in spec.ports or ()),
        cluster_ip=spec.clusterIP or "",
        cluster_ips=tuple(spec.clusterIPs or ()),
        type=spec.type or "ClusterIP",
        selector=_strings(spec.selector),
        labels=_strings(meta.labels),
        annotations=_strings(meta.annotations),
        resource_version=meta.resourceVersion or "",
        created=_timestamp(meta.creationTimestamp),
    )


def _timestamp(value: datetime | None) -> str:
    """RFC 3339 in UTC, seconds precision (as the API server writes it); ``""`` if unset."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _endpoint(ep: discovery_models.Endpoint) -> Endpoint:
    conditions = ep.conditions or discovery_models.EndpointConditions()
    ready = conditions.ready is not False
    ref = ep.targetRef
    return Endpoint(
        addresses=tuple(ep.addresses or ()),
        ready=ready,
        serving=conditions.serving if conditions.serving is not None else ready,
        terminating=bool(conditions.terminating),
        hostname=ep.hostname or "",
        node_name=ep.nodeName or "",
        zone=ep.zone or "",
        target=(
            ObjectRef(ref.kind or "", ref.namespace or "", ref.name or "")
            if ref is not None
            else None
        ),
    )


#: EndpointSlices read untyped: the API sends ``endpoints: null`` for a Service with no
#: endpoints, which the typed model refuses; ``endpoint_slice_raw`` converts these.
RawEndpointSlice = create_namespaced_resource(
    "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"
)


def endpoint_slice_raw(obj: GenericNamespacedResource) -> EndpointSlice:
    """The snapshot of an untyped EndpointSlice (``endpoints: null`` reads as none)."""
    data: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
    data["endpoints"] = data.get("endpoints") or []
    typed = discovery_v1.EndpointSlice.from_dict(data)
    assert isinstance(typed, discovery_v1.EndpointSlice)
    return endpoint_slice(typed)


def endpoint_slice(obj: discovery_v1.EndpointSlice) -> EndpointSlice:
    """The snapshot of an EndpointSlice; ports without a number are dropped."""
    meta = _meta(obj.metadata)
    labels = _strings(meta.labels)
    return EndpointSlice(
        namespace=meta.namespace or "",
        name=meta.name or "",
        service_name=labels.get(SERVICE_NAME_LABEL, ""),
        address_type=obj.addressType,
        endpoints=tuple(_endpoint(ep) for ep in obj.endpoints or ()),
        ports=tuple(
            EndpointPort(port=p.port, name=p.name or "", protocol=p.protocol or "TCP")
            for p in obj.ports or ()
            if p.port is not None
        ),
        labels=labels,
        annotations=_strings(meta.annotations),
    )


def _http_probes(c: core_models.Container) -> tuple[HttpProbe, ...]:
    probes = (c.livenessProbe, c.readinessProbe, c.startupProbe)
    return tuple(
        HttpProbe(port=p.httpGet.port, path=p.httpGet.path or "/")
        for p in probes
        if p is not None and p.httpGet is not None
    )


def _container(c: core_models.Container) -> Container:
    return Container(
        name=c.name,
        ports=tuple(
            ContainerPort(port=p.containerPort, name=p.name or "", protocol=p.protocol or "TCP")
            for p in c.ports or ()
        ),
        http_probes=_http_probes(c),
    )


def pod(obj: core_v1.Pod) -> Pod:
    """The snapshot of a Pod; native sidecars count among its containers."""
    meta = _meta(obj.metadata)
    spec = obj.spec or core_models.PodSpec(containers=[])
    status = obj.status or core_models.PodStatus()
    sidecars = [c for c in spec.initContainers or () if c.restartPolicy == "Always"]
    return Pod(
        namespace=meta.namespace or "",
        name=meta.name or "",
        service_account=spec.serviceAccountName or "default",
        ip=status.podIP or "",
        ips=tuple(p.ip for p in status.podIPs or () if p.ip),
        phase=status.phase or "Pending",
        host_network=bool(spec.hostNetwork),
        node_name=spec.nodeName or "",
        deleting=meta.deletionTimestamp is not None,
        containers=tuple(_container(c) for c in [*sidecars, *(spec.containers or ())]),
        owners=tuple(
            OwnerRef(kind=o.kind, name=o.name, controller=bool(o.controller))
            for o in meta.ownerReferences or ()
        ),
        labels=_strings(meta.labels),
        annotations=_strings(meta.annotations),
    )
