"""The Kubernetes edge: manifests survive lightkube's models, and Endpoints read back flat."""

from __future__ import annotations

from typing import cast

from lightkube.models.core_v1 import EndpointAddress, EndpointPort, EndpointSubset
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1

from mesh.k8s import convert
from mesh.k8s.objects import ServicePort
from mesh.multicluster.mirror.desired import (
    EndpointsPort,
    Mode,
    mirror_endpoints,
    mirror_service,
    service_current,
)
from mesh.multicluster.mirror.kube import endpoints
from tests.multicluster.mirror_support import link, remote_service


def test_a_mirror_manifest_reads_back_as_the_same_mirror() -> None:
    ports = (ServicePort(80, "http", "TCP", 8080), ServicePort(9090, "admin", "TCP", "admin"))
    desired = mirror_service(remote_service(ports=ports), link(), Mode.GATEWAY)
    model = cast(core_v1.Service, core_v1.Service.from_dict(desired.manifest()))
    assert model.spec is not None
    assert model.spec.selector is None
    assert model.spec.clusterIP is None
    assert all(p.nodePort is None for p in model.spec.ports or ())
    back = convert.service(model)
    assert service_current(back, desired)


def test_gateway_endpoints_manifest_reads_back_flat() -> None:
    lk = link()
    svc = mirror_service(remote_service(), lk, Mode.GATEWAY)
    desired = mirror_endpoints(
        svc, lk, lk.gateway_addresses, remote_ready=True, gateway_alive=False
    )
    model = cast(core_v1.Endpoints, core_v1.Endpoints.from_dict(desired.manifest()))
    got = endpoints(model)
    assert got.not_ready == ("172.30.1.3", "172.30.1.20")
    assert got.ready == ()
    assert got.ports == (EndpointsPort("http", 4143),)
    assert got.labels == svc.labels


def test_endpoints_with_several_subsets_are_flattened() -> None:
    obj = core_v1.Endpoints(
        metadata=ObjectMeta(name="web-east", namespace="shop", labels={"a": "b"}),
        subsets=[
            EndpointSubset(
                addresses=[EndpointAddress(ip="10.0.0.1")],
                ports=[EndpointPort(port=4143, name="http")],
            ),
            EndpointSubset(
                notReadyAddresses=[EndpointAddress(ip="10.0.0.2")],
                ports=[EndpointPort(port=4143, name="http")],
            ),
        ],
    )
    got = endpoints(obj)
    assert got.ready == ("10.0.0.1",)
    assert got.not_ready == ("10.0.0.2",)
    assert got.ports == (EndpointsPort("http", 4143),)


def test_endpoints_without_subsets_are_empty() -> None:
    got = endpoints(core_v1.Endpoints(metadata=ObjectMeta(name="web-east", namespace="shop")))
    assert got.empty
