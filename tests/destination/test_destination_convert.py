"""From lightkube models to the mesh's snapshots, and merging watch streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from lightkube.models import core_v1 as k
from lightkube.models import discovery_v1 as kd
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.core_v1 import Pod as KPod
from lightkube.resources.core_v1 import Service as KService
from lightkube.resources.discovery_v1 import EndpointSlice as KEndpointSlice

from mesh.k8s import convert
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
from mesh.k8s.watching import merge


def test_service() -> None:
    model = KService(
        metadata=ObjectMeta(
            name="web",
            namespace="shop",
            resourceVersion="42",
            annotations={"config.linkerd.io/opaque-ports": "80"},
        ),
        spec=k.ServiceSpec(
            clusterIP="10.96.0.10",
            clusterIPs=["10.96.0.10"],
            ports=[k.ServicePort(port=80, name="http", targetPort="web"), k.ServicePort(port=81)],
            selector={"app": "web"},
        ),
    )
    assert convert.service(model) == Service(
        namespace="shop",
        name="web",
        ports=(ServicePort(80, "http", "TCP", "web"), ServicePort(81)),
        cluster_ip="10.96.0.10",
        cluster_ips=("10.96.0.10",),
        selector={"app": "web"},
        annotations={"config.linkerd.io/opaque-ports": "80"},
        resource_version="42",
    )


def test_endpoint_slice_defaults_unset_conditions_to_ready() -> None:
    model = KEndpointSlice(
        metadata=ObjectMeta(
            name="web-abc", namespace="shop", labels={"kubernetes.io/service-name": "web"}
        ),
        addressType="IPv4",
        endpoints=[
            kd.Endpoint(
                addresses=["10.0.0.1"],
                zone="z1",
                targetRef=k.ObjectReference(kind="Pod", namespace="shop", name="web-1"),
            ),
            kd.Endpoint(
                addresses=["10.0.0.2"],
                conditions=kd.EndpointConditions(ready=False, terminating=True),
                hostname="web-2",
            ),
        ],
        ports=[kd.EndpointPort(port=8080, name="http"), kd.EndpointPort(name="unresolved")],
    )
    assert convert.endpoint_slice(model) == EndpointSlice(
        namespace="shop",
        name="web-abc",
        service_name="web",
        endpoints=(
            Endpoint(("10.0.0.1",), zone="z1", target=ObjectRef("Pod", "shop", "web-1")),
            Endpoint(("10.0.0.2",), ready=False, serving=False, terminating=True, hostname="web-2"),
        ),
        ports=(EndpointPort(8080, "http"),),
        labels={"kubernetes.io/service-name": "web"},
    )


def test_pod_counts_native_sidecars_as_containers() -> None:
    model = KPod(
        metadata=ObjectMeta(
            name="web-1",
            namespace="shop",
            labels={"pod-template-hash": "abc"},
            ownerReferences=[
                OwnerReference(
                    apiVersion="apps/v1",
                    kind="ReplicaSet",
                    name="web-abc",
                    uid="u",
                    controller=True,
                )
            ],
        ),
        spec=k.PodSpec(
            serviceAccountName="web",
            nodeName="node-1",
            initContainers=[
                k.Container(name="linkerd-init"),
                k.Container(name="linkerd-proxy", restartPolicy="Always"),
            ],
            containers=[
                k.Container(name="app", ports=[k.ContainerPort(containerPort=8080, name="http")])
            ],
        ),
        status=k.PodStatus(phase="Running", podIP="10.0.0.1", podIPs=[k.PodIP(ip="10.0.0.1")]),
    )
    assert convert.pod(model) == Pod(
        namespace="shop",
        name="web-1",
        service_account="web",
        ip="10.0.0.1",
        ips=("10.0.0.1",),
        node_name="node-1",
        containers=(Container("linkerd-proxy"), Container("app", (ContainerPort(8080, "http"),))),
        owners=(OwnerRef("ReplicaSet", "web-abc"),),
        labels={"pod-template-hash": "abc"},
    )


def test_pod_containers_keep_their_http_probes() -> None:
    ports = [k.ContainerPort(containerPort=8080, name="http")]
    model = KPod(
        metadata=ObjectMeta(name="web-1", namespace="shop"),
        spec=k.PodSpec(
            containers=[
                k.Container(
                    name="app",
                    ports=ports,
                    livenessProbe=k.Probe(httpGet=k.HTTPGetAction(port="http", path="/live")),
                    readinessProbe=k.Probe(httpGet=k.HTTPGetAction(port=8080)),
                    startupProbe=k.Probe(tcpSocket=k.TCPSocketAction(port=8080)),
                ),
                k.Container(name="side", livenessProbe=k.Probe(exec=k.ExecAction(command=["x"]))),
            ]
        ),
    )
    app, side = convert.pod(model).containers
    assert app == Container(
        "app", (ContainerPort(8080, "http"),), (HttpProbe("http", "/live"), HttpProbe(8080, "/"))
    )
    assert [app.probe_port(p) for p in app.http_probes] == [8080, 8080]
    assert side == Container("side")


def test_empty_pod_gets_kubernetes_defaults() -> None:
    got = convert.pod(KPod(metadata=ObjectMeta(name="p", namespace="n")))
    assert got == Pod(namespace="n", name="p", phase="Pending")
    assert got.addresses() == ()


async def _items(*items: int, fail: Exception | None = None) -> AsyncIterator[int]:
    for item in items:
        await asyncio.sleep(0)
        yield item
    if fail is not None:
        raise fail


async def test_merge_yields_everything_then_ends() -> None:
    got = [i async for i in merge(_items(1, 2, 3), _items(10, 20))]
    assert sorted(got) == [1, 2, 3, 10, 20]
    assert [i for i in got if i < 10] == [1, 2, 3]


async def test_merge_raises_a_streams_error() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async for _ in merge(_items(1, fail=RuntimeError("boom")), _items(2)):
            pass


def test_an_endpoint_slice_with_null_endpoints_reads_as_empty() -> None:
    """The API sends ``endpoints: null`` for a Service without endpoints (it crashed us once)."""
    from mesh.k8s.convert import RawEndpointSlice, endpoint_slice_raw

    raw = RawEndpointSlice.from_dict(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "empty-x",
                "namespace": "ns",
                "labels": {"kubernetes.io/service-name": "empty"},
            },
            "addressType": "IPv4",
            "endpoints": None,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        }
    )
    snapshot = endpoint_slice_raw(raw)
    assert (snapshot.service_name, snapshot.endpoints) == ("empty", ())
    assert [p.port for p in snapshot.ports] == [80]
