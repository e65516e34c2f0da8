"""Scenario tests for endpoint discovery: cluster objects and their changes -> updates a proxy gets.

Each scenario starts a ``Get`` subscription on a snapshot, checks the first
answer, then applies watch events one by one and checks what the subscription
is sent after each.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from mesh.destination import (
    Add,
    Address,
    ClusterSnapshot,
    DestinationWatcher,
    NoEndpoints,
    Remove,
    Update,
    WeightedEndpoint,
    authority,
)
from mesh.destination.snapshot import SnapshotEvent
from mesh.k8s.events import Deleted, Upserted
from mesh.k8s.objects import (
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    OwnerRef,
    Pod,
    Service,
    ServicePort,
)
from tests.destination.support import (
    CONFIG,
    NS,
    endpoint,
    expected,
    pod,
    service,
    slice_of,
)

SET = {"namespace": NS, "service": "web"}
WEB = service()
P1 = pod("web-5d8f7c9b4-aaaaa", "10.0.0.1")
P2 = pod("web-5d8f7c9b4-bbbbb", "10.0.0.2")
P3 = pod("web-5d8f7c9b4-ccccc", "10.0.0.3")
AUTH = "web.shop.svc.east.example:80"
DB0 = pod("db-0", "10.0.0.5", owner=OwnerRef("StatefulSet", "db"))
ODD = pod("odd", "10.0.0.6", owner=OwnerRef("ReplicaSet", "odd"), labels={})
LEGACY = pod("legacy", "10.0.0.9", meshed=False, owner=None)
FAR = pod("far", "10.9.9.9")


def add(*endpoints: WeightedEndpoint, labels: dict[str, str] | None = None) -> Add:
    return Add(tuple(endpoints), SET if labels is None else labels)


def _relabel(ep: WeightedEndpoint, **labels: str) -> WeightedEndpoint:
    return replace(ep, labels={**ep.labels, **labels})


def remove(*pods: Pod, port: int = 8080) -> Remove:
    return Remove(tuple(Address(p.ip, port) for p in pods))


@dataclass
class Scenario:
    id: str
    services: list[Service]
    slices: list[EndpointSlice]
    pods: list[Pod]
    first: list[Update]
    steps: list[tuple[SnapshotEvent, list[Update]]] = field(default_factory=list)
    authority: str = AUTH


def _slice(*pods: Pod, ready: tuple[bool, ...] = ()) -> EndpointSlice:
    flags = ready or (True,) * len(pods)
    return slice_of(WEB, [endpoint(p, ready=r) for p, r in zip(pods, flags, strict=True)])


SCENARIOS = [
    Scenario(
        "initial-set",
        [WEB],
        [_slice(P2, P1)],
        [P1, P2],
        [add(expected(P1), expected(P2))],
    ),
    Scenario(
        "scale-up",
        [WEB],
        [_slice(P1)],
        [P1, P2],
        [add(expected(P1))],
        [(Upserted(_slice(P1, P2)), [add(expected(P2))])],
    ),
    Scenario(
        "scale-down",
        [WEB],
        [_slice(P1, P2, P3)],
        [P1, P2, P3],
        [add(expected(P1), expected(P2), expected(P3))],
        [
            (Upserted(_slice(P1, P3)), [remove(P2)]),
            (Deleted(P2), []),
            (Upserted(_slice(P3)), [remove(P1)]),
        ],
    ),
    Scenario(
        "readiness-flips",
        [WEB],
        [_slice(P1, P2)],
        [P1, P2],
        [add(expected(P1), expected(P2))],
        [
            (Upserted(_slice(P1, P2, ready=(True, False))), [remove(P2)]),
            (Upserted(_slice(P1, P2, ready=(False, False))), [NoEndpoints(exists=True)]),
            (Upserted(_slice(P1, P2, ready=(False, True))), [add(expected(P2))]),
            (Upserted(_slice(P1, P2)), [add(expected(P1))]),
        ],
    ),
    Scenario(
        "unknown-service-appears-fills-and-goes",
        [],
        [],
        [P1],
        [NoEndpoints(exists=False)],
        [
            (Upserted(WEB), [NoEndpoints(exists=True)]),
            (Upserted(_slice(P1)), [add(expected(P1))]),
            (Deleted(_slice(P1)), [NoEndpoints(exists=True)]),
            (Deleted(WEB), [NoEndpoints(exists=False)]),
            (Upserted(P2), []),
        ],
    ),
    Scenario(
        "metadata-change-is-an-add-not-a-remove",
        [WEB],
        [_slice(P1)],
        [P1],
        [add(expected(P1))],
        [
            (
                Upserted(replace(P1, service_account="api")),
                [add(expected(replace(P1, service_account="api")))],
            ),
            (Upserted(replace(P1, service_account="api")), []),
        ],
    ),
    Scenario(
        "meshed-and-unmeshed",
        [WEB],
        [_slice(P1, LEGACY)],
        [P1, LEGACY],
        [add(expected(P1), expected(LEGACY, meshed=False, deployment=None))],
        [
            # The injector's annotation alone marks a pod meshed.
            (
                Upserted(replace(LEGACY, annotations={"linkerd.io/proxy-version": "dev"})),
                [add(expected(LEGACY, deployment=None))],
            ),
        ],
    ),
    Scenario(
        "opt-outs-drop-the-identity",
        [WEB],
        [
            _slice(
                pod(
                    "a",
                    "10.0.0.1",
                    annotations={"config.linkerd.io/skip-inbound-ports": "8000-8100"},
                ),
                pod("b", "10.0.0.2", annotations={"config.linkerd.io/disable-identity": "true"}),
            )
        ],
        [
            pod("a", "10.0.0.1", annotations={"config.linkerd.io/skip-inbound-ports": "8000-8100"}),
            pod("b", "10.0.0.2", annotations={"config.linkerd.io/disable-identity": "true"}),
        ],
        [
            add(
                expected(pod("a", "10.0.0.1"), meshed=False),
                replace(expected(pod("b", "10.0.0.2")), identity=None),
            )
        ],
    ),
    Scenario(
        "named-target-port-resolved-from-the-pod",
        [service(ports=[ServicePort(80, "http", target_port="web")])],
        [
            slice_of(
                service(),
                [endpoint(pod("a", "10.0.0.1", ports=[ContainerPort(9000, "web")]))],
                ports=[],
            )
        ],
        [pod("a", "10.0.0.1", ports=[ContainerPort(9000, "web")])],
        [add(expected(pod("a", "10.0.0.1"), 9000))],
    ),
    Scenario(
        "named-target-port-from-the-slice-per-pod",
        [service(ports=[ServicePort(80, "http", target_port="web")])],
        [
            slice_of(service(), [endpoint(P1)], name="s1", ports=[EndpointPort(9001, "http")]),
            slice_of(service(), [endpoint(P2)], name="s2", ports=[EndpointPort(9002, "http")]),
        ],
        [P1, P2],
        [add(expected(P1, 9001), expected(P2, 9002))],
    ),
    Scenario(
        "port-the-service-does-not-declare-is-used-as-is",
        [WEB],
        [_slice(P1)],
        [P1],
        [add(expected(P1, 7000))],
        authority="web.shop.svc.east.example:7000",
    ),
    Scenario(
        "opaque-by-service-annotation",
        [service(annotations={"config.linkerd.io/opaque-ports": "http"})],
        [_slice(P1, LEGACY)],
        [P1, LEGACY],
        [add(expected(P1, opaque=True), expected(LEGACY, meshed=False, deployment=None))],
    ),
    Scenario(
        "opaque-by-pod-annotation-and-by-default",
        [service(ports=[ServicePort(80, "http", target_port=8080), ServicePort(3306, "db")])],
        [
            slice_of(
                WEB,
                [
                    endpoint(P1),
                    endpoint(
                        pod("b", "10.0.0.2", annotations={"config.linkerd.io/opaque-ports": "http"})
                    ),
                ],
                ports=[EndpointPort(8080, "http"), EndpointPort(3306, "db")],
            )
        ],
        [P1, pod("b", "10.0.0.2", annotations={"config.linkerd.io/opaque-ports": "http"})],
        [add(expected(P1), expected(pod("b", "10.0.0.2"), opaque=True))],
        [],
    ),
    Scenario(
        "default-opaque-port",
        [service(ports=[ServicePort(3306, "db")])],
        [slice_of(service(ports=[ServicePort(3306, "db")]), [endpoint(P1)])],
        [P1],
        [add(expected(P1, 3306, opaque=True))],
        authority="web.shop.svc.east.example:3306",
    ),
    Scenario(
        "duplicate-addresses-across-slices-are-one-endpoint",
        [WEB],
        [_slice(P1), replace(_slice(P1, P2), name="web-fghij")],
        [P1, P2],
        [add(expected(P1), expected(P2))],
        [(Deleted(_slice(P1)), [])],
    ),
    Scenario(
        "fqdn-slices-and-addressless-endpoints-are-ignored",
        [WEB],
        [
            replace(_slice(P1), address_type="FQDN"),
            replace(_slice(P2), name="web-2", endpoints=(Endpoint(addresses=()),)),
        ],
        [P1, P2],
        [NoEndpoints(exists=True)],
    ),
    Scenario(
        "owners-and-zones-label-endpoints",
        [WEB],
        [slice_of(WEB, [endpoint(DB0, zone="z1"), endpoint(ODD)])],
        [DB0, ODD],
        [
            add(
                _relabel(expected(DB0, zone="z1", deployment=None), statefulset="db"),
                _relabel(expected(ODD, deployment=None), replicaset="odd"),
            )
        ],
    ),
    Scenario(
        "hostname-names-one-endpoint",
        [WEB],
        [slice_of(WEB, [endpoint(P1, hostname="web-0"), endpoint(P2, hostname="web-1")])],
        [P1, P2],
        [add(expected(P2))],
        authority="web-1.web.shop.svc.east.example:80",
    ),
    Scenario(
        "cluster-ip-is-the-service",
        [WEB],
        [_slice(P1)],
        [P1],
        [add(expected(P1))],
        [(Deleted(WEB), [NoEndpoints(exists=False)])],
        authority="10.96.0.10:80",
    ),
    Scenario(
        "pod-ip-is-that-pod",
        [WEB],
        [_slice(P1)],
        [P1],
        [add(expected(P1, service=None), labels={"namespace": NS})],
        [
            (Upserted(replace(P1, deleting=True)), [NoEndpoints(exists=True)]),
            (Deleted(P1), [NoEndpoints(exists=False)]),
        ],
        authority="10.0.0.1:8080",
    ),
    Scenario(
        "unknown-ip-until-a-pod-has-it",
        [WEB],
        [_slice(P1)],
        [P1],
        [NoEndpoints(exists=False)],
        [
            (Upserted(P2), []),
            (Upserted(FAR), [add(expected(FAR, 80, service=None), labels={"namespace": NS})]),
        ],
        authority="10.9.9.9:80",
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_scenario(scenario: Scenario) -> None:
    snapshot = ClusterSnapshot.of(scenario.services, scenario.slices, scenario.pods)
    watcher = DestinationWatcher(CONFIG, snapshot)
    target = authority.parse(scenario.authority, CONFIG.cluster_domain)
    sub, first = watcher.watch_endpoints(target)
    assert first == scenario.first
    for step, (event, updates) in enumerate(scenario.steps, 1):
        changes = watcher.apply(event)
        assert changes.endpoints.get(sub, []) == updates, f"step {step}: {event}"
