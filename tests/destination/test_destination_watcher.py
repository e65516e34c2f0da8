"""Subscriptions over a changing cluster: diffs, profiles, and whom an event wakes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mesh.destination import (
    Add,
    Address,
    ClusterSnapshot,
    DestinationWatcher,
    EndpointSet,
    Missing,
    NoEndpoints,
    Profile,
    Remove,
    Resolution,
    Update,
    WeightedEndpoint,
    authority,
    diff,
    profile,
)
from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.objects import EndpointSlice, Pod, Service, ServicePort
from tests.destination.support import CONFIG, NS, endpoint, expected, pod, service, slice_of

A = WeightedEndpoint(Address("10.0.0.1", 8080))
B = WeightedEndpoint(Address("10.0.0.2", 8080))
B2 = replace(B, identity="b.shop.serviceaccount.identity.linkerd.mesh.example")
C = WeightedEndpoint(Address("10.0.0.3", 8080))
LABELS = {"namespace": NS, "service": "web"}


def eps(*endpoints: WeightedEndpoint) -> EndpointSet:
    return EndpointSet({e.address: e for e in endpoints}, LABELS)


@pytest.mark.parametrize(
    ("old", "new", "updates"),
    [
        (None, Missing(), [NoEndpoints(exists=False)]),
        (None, eps(), [NoEndpoints(exists=True)]),
        (None, eps(B, A), [Add((A, B), LABELS)]),
        (Missing(), Missing(), []),
        (eps(), eps(), []),
        (eps(A), eps(A), []),
        (Missing(), eps(A), [Add((A,), LABELS)]),
        (eps(), eps(A), [Add((A,), LABELS)]),
        (eps(A), eps(), [NoEndpoints(exists=True)]),
        (eps(A), Missing(), [NoEndpoints(exists=False)]),
        (eps(A, B), eps(B, C), [Remove((A.address,)), Add((C,), LABELS)]),
        (eps(A, B, C), eps(B), [Remove((A.address, C.address))]),
        (eps(A, B), eps(A, B2), [Add((B2,), LABELS)]),
    ],
)
def test_diff(old: Resolution | None, new: Resolution, updates: list[Update]) -> None:
    assert diff(old, new) == updates


WEB = service()
P1 = pod("web-1", "10.0.0.1")
SLICE = slice_of(WEB, [endpoint(P1)])


def target(text: str) -> authority.Target:
    return authority.parse(text, CONFIG.cluster_domain)


def test_events_in_other_namespaces_do_not_wake_service_subscriptions() -> None:
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([WEB], [SLICE], [P1]))
    web, _ = watcher.watch_endpoints(target("web.shop.svc.east.example:80"))
    other, _ = watcher.watch_endpoints(target("web.other.svc.east.example:80"))
    by_ip, _ = watcher.watch_endpoints(target("10.0.0.1:8080"))

    other_web = service(ns="other", cluster_ip="10.96.0.20")
    changes = watcher.apply(Upserted(other_web))
    assert changes.endpoints == {other: [NoEndpoints(exists=True)]}

    moved = replace(P1, service_account="api")
    changes = watcher.apply(Upserted(moved))
    assert set(changes.endpoints) == {web, by_ip}


def test_a_listing_wakes_everyone_and_replaces_the_kind() -> None:
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([WEB], [SLICE], [P1]))
    web, _ = watcher.watch_endpoints(target("web.shop.svc.east.example:80"))
    changes = watcher.apply(Listed(EndpointSlice, ()))
    assert changes.endpoints == {web: [NoEndpoints(exists=True)]}
    changes = watcher.apply(Listed(Service, ()))
    assert changes.endpoints == {web: [NoEndpoints(exists=False)]}


def test_unwatched_subscriptions_get_nothing() -> None:
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([WEB], [SLICE], [P1]))
    web, _ = watcher.watch_endpoints(target("web.shop.svc.east.example:80"))
    prof, _ = watcher.watch_profile(target("web.shop.svc.east.example:80"))
    assert len(watcher) == 2
    watcher.unwatch(web)
    watcher.unwatch(prof)
    watcher.unwatch(prof)
    assert len(watcher) == 0
    assert not watcher.apply(Deleted(WEB))


def test_synced_only_once_every_kind_is_listed() -> None:
    watcher = DestinationWatcher(CONFIG)
    assert not watcher.synced
    watcher.apply(Listed(Service, (WEB,)))
    watcher.apply(Listed(Pod, ()))
    assert not watcher.synced
    watcher.apply(Listed(EndpointSlice, ()))
    assert watcher.synced


OPAQUE_WEB = service(annotations={"config.linkerd.io/opaque-ports": "80"})
FQDN = "web.shop.svc.east.example"


@pytest.mark.parametrize(
    ("services", "pods", "text", "expected_profile"),
    [
        ([WEB], [P1], f"{FQDN}:80", Profile(FQDN, opaque=False)),
        ([OPAQUE_WEB], [P1], f"{FQDN}:80", Profile(FQDN, opaque=True)),
        ([], [], f"{FQDN}:3306", Profile(FQDN, opaque=True)),
        ([WEB], [P1], "10.96.0.10:80", Profile(FQDN)),
        ([OPAQUE_WEB], [P1], "10.96.0.10:80", Profile(FQDN, opaque=True)),
        (
            [WEB],
            [P1],
            "10.0.0.1:8080",
            Profile(endpoint=expected(P1, service=None)),
        ),
        (
            [WEB],
            [pod("db", "10.0.0.7", annotations={"config.linkerd.io/opaque-ports": "5000"})],
            "10.0.0.7:5000",
            Profile(
                opaque=True,
                endpoint=expected(pod("db", "10.0.0.7"), 5000, service=None, opaque=True),
            ),
        ),
        (
            [WEB],
            [],
            "192.0.2.1:80",
            Profile(endpoint=WeightedEndpoint(Address("192.0.2.1", 80))),
        ),
    ],
)
def test_profile(
    services: list[Service], pods: list[Pod], text: str, expected_profile: Profile
) -> None:
    snapshot = ClusterSnapshot.of(services, [slice_of(WEB, [endpoint(p) for p in pods])], pods)
    assert profile(snapshot, CONFIG, target(text)) == expected_profile


def test_profile_of_a_hostname_carries_its_endpoint() -> None:
    slice_ = slice_of(WEB, [endpoint(P1, hostname="web-0")])
    snapshot = ClusterSnapshot.of([WEB], [slice_], [P1])
    got = profile(snapshot, CONFIG, target(f"web-0.{FQDN}:80"))
    assert got == Profile(FQDN, endpoint=expected(P1))


def test_profile_subscriptions_hear_only_real_changes() -> None:
    watcher = DestinationWatcher(CONFIG, ClusterSnapshot.of([WEB], [SLICE], [P1]))
    sub, first = watcher.watch_profile(target(f"{FQDN}:80"))
    assert first == Profile(FQDN)
    assert not watcher.apply(Upserted(replace(P1, service_account="x")))
    changes = watcher.apply(Upserted(OPAQUE_WEB))
    assert changes.profiles == {sub: Profile(FQDN, opaque=True)}
    assert not watcher.apply(Upserted(OPAQUE_WEB))


def test_service_port_lookup_prefers_tcp() -> None:
    svc = service(ports=[ServicePort(53, "dns-udp", "UDP"), ServicePort(53, "dns-tcp", "TCP")])
    assert svc.port(53) == ServicePort(53, "dns-tcp", "TCP")
    assert svc.port(54) is None
