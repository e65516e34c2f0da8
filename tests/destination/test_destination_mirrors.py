"""Gateway-mode mirrors: a mirror Service resolves to the remote gateway, with its identity.

Scenarios as the API holds them after the controller-manager mirrored the
service mirror's Endpoints into an EndpointSlice (labels and annotations copied).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mesh.destination import (
    Add,
    Address,
    ClusterSnapshot,
    DestinationWatcher,
    NoEndpoints,
    Remove,
    WeightedEndpoint,
    authority,
)
from mesh.k8s.events import Deleted, Upserted
from mesh.k8s.objects import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
from mesh.multicluster import labels as mc
from tests.destination.support import CONFIG, NS, endpoint, pod, service, slice_of

GW_ID = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.mesh.example"
FQ = "web.shop.svc.west.example"
MIRROR_LABELS = {mc.MIRRORED_SERVICE: "true", mc.CLUSTER_NAME: "west"}
MIRROR = replace(
    service(
        "web-west",
        cluster_ip="10.96.0.20",
        ports=[ServicePort(80, "http", target_port=8080), ServicePort(9090, "admin")],
        annotations={mc.REMOTE_SVC_FQ_NAME: FQ, mc.REMOTE_RESOURCE_VERSION: "7"},
    ),
    selector={},
    labels=MIRROR_LABELS,
)
SET = {"namespace": NS, "service": "web-west"}
REMOTE = {"target_cluster": "west", "target_service": "web", "target_service_namespace": NS}


def mirrored_slice(
    *ips: str,
    identity: str | None = GW_ID,
    fq_name: str | None = FQ,
    ready: bool = True,
    gateway_port: int = 4143,
) -> EndpointSlice:
    """The slice the controller-manager mirrors from the service mirror's Endpoints."""
    annotations = {}
    if identity is not None:
        annotations[mc.REMOTE_GATEWAY_IDENTITY] = identity
    if fq_name is not None:
        annotations[mc.REMOTE_SVC_FQ_NAME] = fq_name
    return EndpointSlice(
        namespace=NS,
        name="web-west-x7k2p",
        service_name="web-west",
        endpoints=tuple(Endpoint((ip,), ready=ready) for ip in ips),
        ports=(EndpointPort(gateway_port, "http"), EndpointPort(gateway_port, "admin")),
        labels={**MIRROR_LABELS, "endpointslice.kubernetes.io/managed-by": "x"},
        annotations=annotations,
    )


def gateway(ip: str, port: int = 80, *, identity: str | None = GW_ID) -> WeightedEndpoint:
    return WeightedEndpoint(
        Address(ip, 4143),
        labels={**SET, **REMOTE},
        identity=identity,
        authority_override=f"{FQ}:{port}",
    )


def first(slices: list[EndpointSlice], target: str = "web-west.shop.svc.east.example:80") -> list:
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([MIRROR], slices, []))
    return watcher.watch_endpoints(authority.parse(target, CONFIG.cluster_domain))[1]


def test_mirror_resolves_to_the_gateways_with_their_identity_and_the_remote_authority() -> None:
    updates = first([mirrored_slice("172.30.27.12", "172.30.27.11")])
    assert updates == [Add((gateway("172.30.27.11"), gateway("172.30.27.12")), SET)]


def test_the_override_names_the_requested_service_port_not_the_gateway_port() -> None:
    updates = first([mirrored_slice("172.30.27.11")], "web-west.shop.svc.east.example:9090")
    assert updates == [Add((gateway("172.30.27.11", 9090),), SET)]


def test_lookup_by_cluster_ip_gives_the_same_gateway() -> None:
    updates = first([mirrored_slice("172.30.27.11")], "10.96.0.20:80")
    assert updates == [Add((gateway("172.30.27.11"),), SET)]


def test_an_empty_identity_annotation_means_plaintext_to_the_gateway() -> None:
    updates = first([mirrored_slice("172.30.27.11", identity="")])
    assert updates == [Add((gateway("172.30.27.11", identity=None),), SET)]


def test_not_ready_gateway_addresses_are_not_served() -> None:
    assert first([mirrored_slice("172.30.27.11", ready=False)]) == [NoEndpoints(exists=True)]


def test_the_fq_name_falls_back_to_the_services_annotation() -> None:
    updates = first([mirrored_slice("172.30.27.11", fq_name=None)])
    assert updates == [Add((gateway("172.30.27.11"),), SET)]


@pytest.mark.parametrize(
    ("mirror", "why"),
    [
        (replace(MIRROR, labels={}), "not labelled as a mirror"),
        (replace(MIRROR, selector={"app": "web"}), "has a selector: its endpoints are pods"),
    ],
)
def test_only_selectorless_mirrors_get_gateway_treatment(mirror: Service, why: str) -> None:
    watcher = DestinationWatcher(
        CONFIG, ClusterSnapshot.of([mirror], [mirrored_slice("172.30.27.11")], [])
    )
    _, updates = watcher.watch_endpoints(authority.parse("10.96.0.20:80", CONFIG.cluster_domain))
    plain = WeightedEndpoint(Address("172.30.27.11", 4143), labels=SET)
    assert updates == [Add((plain,), SET)], why


def test_a_pod_endpoint_in_a_mirror_slice_stays_a_pod_endpoint() -> None:
    web = pod("web-5d8f7c9b4-aaaaa", "10.0.0.1")
    slice_ = replace(
        slice_of(MIRROR, [endpoint(web)], name="web-west-x7k2p"),
        annotations={mc.REMOTE_GATEWAY_IDENTITY: GW_ID},
    )
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([MIRROR], [slice_], [web]))
    _, updates = watcher.watch_endpoints(authority.parse("10.96.0.20:80", CONFIG.cluster_domain))
    (add,) = updates
    assert isinstance(add, Add)
    (only,) = add.endpoints
    assert only.authority_override is None
    assert only.identity == "web.shop.serviceaccount.identity.linkerd.mesh.example"


def test_gateway_changes_reach_the_subscriber() -> None:
    watcher = DestinationWatcher(
        CONFIG, ClusterSnapshot.of([MIRROR], [mirrored_slice("172.30.27.11")], [])
    )
    target = authority.parse("web-west.shop.svc.east.example:80", CONFIG.cluster_domain)
    sub, _ = watcher.watch_endpoints(target)
    moved = watcher.apply(Upserted(mirrored_slice("172.30.27.12")))
    assert moved.endpoints[sub] == [
        Remove((Address("172.30.27.11", 4143),)),
        Add((gateway("172.30.27.12"),), SET),
    ]
    new_id = "gw.linkerd-multicluster.serviceaccount.identity.linkerd.mesh.example"
    rekeyed = watcher.apply(Upserted(mirrored_slice("172.30.27.12", identity=new_id)))
    assert rekeyed.endpoints[sub] == [Add((gateway("172.30.27.12", identity=new_id),), SET)]
    gone = watcher.apply(Deleted(mirrored_slice("172.30.27.12")))
    assert gone.endpoints[sub] == [NoEndpoints(exists=True)]


def test_a_headless_mirror_host_resolves_through_its_per_host_mirror_to_the_gateway() -> None:
    """CONF-29: ``db-0.db-west`` names the per-host mirror's cluster IP; the proxy gets the
    gateway (with its identity and the host's remote name), never that IP in plaintext."""
    fq = "db-0.db.shop.svc.west.example"
    ports = [ServicePort(80, "http", target_port=8080)]
    parent = replace(
        service("db-west", cluster_ip="None", ports=ports),
        selector={},
        labels=MIRROR_LABELS,
    )
    host = replace(
        service(
            "db-0-west",
            cluster_ip="10.96.0.30",
            ports=ports,
            annotations={mc.REMOTE_SVC_FQ_NAME: fq, mc.HEADLESS_MIRROR_SVC_NAME: "db-west"},
        ),
        selector={},
        labels=MIRROR_LABELS,
    )
    headless = EndpointSlice(
        namespace=NS,
        name="db-west-abcde",
        service_name="db-west",
        endpoints=(Endpoint(("10.96.0.30",), hostname="db-0"),),
        ports=(EndpointPort(80, "http"),),
        labels=MIRROR_LABELS,
    )
    gw = replace(
        mirrored_slice("172.30.27.11", fq_name=fq), name="db-0-west-x", service_name="db-0-west"
    )
    gw = replace(gw, ports=(EndpointPort(4143, "http"),))
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([parent, host], [headless, gw], []))
    target = authority.parse("db-0.db-west.shop.svc.east.example:80", CONFIG.cluster_domain)
    updates = watcher.watch_endpoints(target)[1]
    (add,) = updates
    assert isinstance(add, Add)
    (ep,) = add.endpoints
    assert ep.address == Address("172.30.27.11", 4143)
    assert ep.identity == GW_ID
    assert ep.authority_override == f"{fq}:80"
    # An unrelated headless Service's endpoint at some cluster IP stays as it is.
    plain = replace(parent, labels={})
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([plain, host], [headless, gw], []))
    (add,) = watcher.watch_endpoints(target)[1]
    assert isinstance(add, Add)
    assert [e.address for e in add.endpoints] == [Address("10.96.0.30", 80)]
