"""Traffic splits in discovery: conversion, routing, streaming to subscribers, problems."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.destination.authority import IpTarget, ServiceTarget
from mesh.destination.profiles import Profile
from mesh.destination.snapshot import ClusterSnapshot
from mesh.destination.split_objects import (
    HttpRoute,
    PathKind,
    PolicyHttpRoute,
    RouteMatch,
    TrafficSplit,
    http_route,
    milli_weight,
    traffic_split,
)
from mesh.destination.splits import RouteEntry, WeightedDst
from mesh.destination.translate import profile_message
from mesh.destination.watcher import DestinationWatcher
from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.proto import destination_pb2 as pb
from tests.destination.support import CONFIG, NS, service

DOMAIN = CONFIG.cluster_domain
WEB_IP = "10.96.0.10"


def _authority(name: str, port: int = 80) -> str:
    return f"{name}.{NS}.svc.{DOMAIN}:{port}"


def split_raw(
    backends: list[dict[str, Any]],
    *,
    apex: str = "web",
    name: str = "web-split",
    version: str = "v1alpha2",
) -> dict[str, Any]:
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": {"namespace": NS, "name": name, "uid": "u-1"},
        "spec": {"service": apex, "backends": backends},
    }


def route_raw(
    rules: list[dict[str, Any]],
    *,
    parent: dict[str, Any] | None = None,
    name: str = "web-route",
    group: str = "gateway.networking.k8s.io/v1",
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    return {
        "apiVersion": group,
        "kind": "HTTPRoute",
        "metadata": {"namespace": NS, "name": name, "creationTimestamp": created},
        "spec": {
            "parentRefs": [parent or {"group": "core", "kind": "Service", "name": "web"}],
            "rules": rules,
        },
    }


SERVICES = [
    service("web", cluster_ip=WEB_IP),
    service("web-v2", cluster_ip="10.96.0.11"),
    service("web-east", cluster_ip="10.96.0.12"),
]


def watcher(*objects: TrafficSplit | HttpRoute) -> DestinationWatcher:
    w = DestinationWatcher(CONFIG, ClusterSnapshot.of(SERVICES))
    w.apply(Listed(TrafficSplit, tuple(o for o in objects if isinstance(o, TrafficSplit))))
    routes = [o for o in objects if isinstance(o, HttpRoute)]
    w.apply(Listed(HttpRoute, tuple(r for r in routes if not isinstance(r, PolicyHttpRoute))))
    w.apply(Listed(PolicyHttpRoute, tuple(r for r in routes if isinstance(r, PolicyHttpRoute))))
    return w


def ip_profile(w: DestinationWatcher) -> Profile:
    _, first = w.watch_profile(IpTarget(WEB_IP, 80))
    return first


# --- weights ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "milli"),
    [
        (1, 1000),
        (0, 0),
        ("500m", 500),
        ("1", 1000),
        ("2k", 2_000_000),
        ("0.25", 250),
        (100, 100_000),
    ],
)
def test_weights_become_milli_units(written: object, milli: int) -> None:
    assert milli_weight(written, "w") == milli


@pytest.mark.parametrize("bad", [-1, "-500m", "1.0001", "lots", True, None, 1.5, "5Ti"])
def test_unusable_weights_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="weight"):
        milli_weight(bad, "spec.backends[0]")


def test_v1alpha1_quantities_and_v1alpha2_integers_read_alike() -> None:
    v1 = traffic_split(
        split_raw(
            [{"service": "web", "weight": "500m"}, {"service": "web-east", "weight": "500m"}],
            version="v1alpha1",
        )
    )
    v2 = traffic_split(
        split_raw([{"service": "web", "weight": 50}, {"service": "web-east", "weight": 50}])
    )
    assert [b.weight for b in v1.backends] == [500, 500]
    assert [b.weight for b in v2.backends] == [50_000, 50_000]
    assert v1.apex == v2.apex == "web"


@pytest.mark.parametrize(
    "raw",
    [
        split_raw([{"service": "web", "weight": -5}]),
        split_raw([{"weight": 5}]),
        {"metadata": {"namespace": NS, "name": "x"}, "spec": {"backends": []}},
        {"metadata": {"name": "x"}, "spec": {"service": "web"}},
    ],
)
def test_broken_splits_do_not_convert(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"weight|required"):
        traffic_split(raw)


def test_route_conversion_defaults_and_groups() -> None:
    route = http_route(route_raw([{"backendRefs": [{"name": "web-v2", "port": 80}]}]))
    assert not isinstance(route, PolicyHttpRoute)
    rule = route.rules[0]
    assert rule.matches == (RouteMatch(),)
    assert rule.backends[0].weight == 1000
    assert rule.backends[0].is_service
    policy = http_route(route_raw([], group="policy.linkerd.io/v1beta3"))
    assert isinstance(policy, PolicyHttpRoute)
    assert policy.rules[0].matches == (RouteMatch(),)
    assert policy.rules[0].backends == ()


@pytest.mark.parametrize(
    "match",
    [
        {"path": {"type": "RegularExpression", "value": "(["}},
        {"headers": [{"name": "x", "type": "RegularExpression", "value": "*"}]},
        {"path": {"type": "Glob", "value": "/a"}},
        {"path": {"type": "Exact", "value": "no-slash"}},
    ],
)
def test_routes_with_unusable_matches_do_not_convert(match: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"regular expression|path"):
        http_route(route_raw([{"matches": [match]}]))


# --- TrafficSplit routing ----------------------------------------------------


def test_a_traffic_split_divides_the_apex_by_weight() -> None:
    split = traffic_split(
        split_raw([{"service": "web", "weight": 1}, {"service": "web-east", "weight": 3}])
    )
    got = ip_profile(watcher(split))
    assert got.fully_qualified_name == f"web.{NS}.svc.{DOMAIN}"
    assert got.dst_overrides == (
        WeightedDst(_authority("web"), 1000),
        WeightedDst(_authority("web-east"), 3000),
    )
    # by name too
    _, by_name = watcher(split).watch_profile(ServiceTarget(NS, "web", 80, DOMAIN))
    assert by_name.dst_overrides == got.dst_overrides


def test_a_missing_backend_keeps_its_share_with_no_authority() -> None:
    split = traffic_split(
        split_raw([{"service": "web", "weight": 1}, {"service": "nowhere", "weight": 1}])
    )
    got = ip_profile(watcher(split))
    assert got.dst_overrides == (WeightedDst(_authority("web"), 1000), WeightedDst("", 1000))


def test_zero_total_weight_routes_directly() -> None:
    split = traffic_split(
        split_raw([{"service": "web", "weight": 0}, {"service": "web-east", "weight": 0}])
    )
    w = watcher(split)
    assert ip_profile(w).dst_overrides == ()
    reasons = {p.reason for p in w.problems()}
    assert reasons == {"NoWeight"}


def test_split_changes_stream_to_profile_subscribers_and_deletion_restores_direct() -> None:
    w = watcher()
    sub, first = w.watch_profile(IpTarget(WEB_IP, 80))
    assert first.dst_overrides == ()
    split = traffic_split(
        split_raw([{"service": "web", "weight": 0}, {"service": "web-east", "weight": 100}])
    )
    changes = w.apply(Upserted(split))
    assert changes.profiles[sub].dst_overrides == (
        WeightedDst(_authority("web"), 0),
        WeightedDst(_authority("web-east"), 100_000),
    )
    shifted = traffic_split(
        split_raw([{"service": "web", "weight": 50}, {"service": "web-east", "weight": 50}])
    )
    assert [d.weight for d in w.apply(Upserted(shifted)).profiles[sub].dst_overrides] == [
        50_000,
        50_000,
    ]
    assert not w.apply(Upserted(shifted)), "an unchanged split sends nothing"
    assert w.apply(Deleted(shifted)).profiles[sub].dst_overrides == ()


def test_a_backend_service_appearing_fills_its_authority() -> None:
    split = traffic_split(
        split_raw([{"service": "web", "weight": 1}, {"service": "web-west", "weight": 1}])
    )
    w = watcher(split)
    sub, first = w.watch_profile(IpTarget(WEB_IP, 80))
    assert first.dst_overrides[1].authority == ""
    changes = w.apply(Upserted(service("web-west", cluster_ip="10.96.0.13")))
    assert changes.profiles[sub].dst_overrides[1].authority == _authority("web-west")


def test_other_services_are_untouched_by_a_split() -> None:
    split = traffic_split(
        split_raw([{"service": "web", "weight": 1}, {"service": "web-east", "weight": 1}])
    )
    _, other = watcher(split).watch_profile(IpTarget("10.96.0.11", 80))
    assert other.dst_overrides == ()
    assert other.http_routes == ()


def test_a_second_split_on_one_apex_is_ignored_and_reported() -> None:
    first = traffic_split(split_raw([{"service": "web-v2", "weight": 1}], name="a"))
    second = traffic_split(split_raw([{"service": "web-east", "weight": 1}], name="b"))
    w = watcher(first, second)
    assert ip_profile(w).dst_overrides == (WeightedDst(_authority("web-v2"), 1000),)
    conflicts = [p for p in w.problems() if p.reason == "Conflict"]
    assert [p.name for p in conflicts] == ["b"]


def test_a_split_on_a_missing_apex_is_reported() -> None:
    split = traffic_split(split_raw([{"service": "web", "weight": 1}], apex="ghost"))
    w = watcher(split)
    assert {(p.kind, p.name, p.reason) for p in w.problems()} == {
        ("TrafficSplit", "web-split", "ApexNotFound")
    }
    assert ip_profile(w).dst_overrides == ()


# --- HTTPRoute routing -------------------------------------------------------


def test_http_route_weighted_backends_default_weight_one() -> None:
    route = http_route(
        route_raw(
            [
                {
                    "backendRefs": [
                        {"name": "web", "port": 80},
                        {"name": "web-v2", "port": 80, "weight": 3},
                    ]
                }
            ]
        )
    )
    got = ip_profile(watcher(route))
    assert got.dst_overrides == ()
    assert got.http_routes == (
        RouteEntry(
            RouteMatch(),
            (WeightedDst(_authority("web"), 1000), WeightedDst(_authority("web-v2"), 3000)),
        ),
    )


def test_http_route_wins_over_a_traffic_split() -> None:
    split = traffic_split(split_raw([{"service": "web-east", "weight": 1}]))
    route = http_route(route_raw([{"backendRefs": [{"name": "web-v2", "port": 80}]}]))
    got = ip_profile(watcher(split, route))
    assert got.dst_overrides == ()
    assert got.http_routes[0].backends == (WeightedDst(_authority("web-v2"), 1000),)


def test_matches_are_ordered_by_gateway_api_precedence() -> None:
    older = http_route(
        route_raw(
            [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "backendRefs": [{"name": "web-v2", "port": 80}],
                },
                {
                    "matches": [{"headers": [{"name": "X-Canary", "value": "1"}]}],
                    "backendRefs": [{"name": "web-east", "port": 80}],
                },
            ]
        )
    )
    newer = http_route(
        route_raw(
            [{"matches": [{"path": {"type": "Exact", "value": "/api/v1"}, "method": "get"}]}],
            name="exact",
            created="2026-02-01T00:00:00Z",
            group="policy.linkerd.io/v1beta3",
        )
    )
    got = ip_profile(watcher(older, newer))
    kinds = [(e.match.path_kind, e.match.path, e.match.method) for e in got.http_routes]
    assert kinds == [
        (PathKind.EXACT, "/api/v1", "GET"),
        (PathKind.PREFIX, "/api", ""),
        (PathKind.PREFIX, "/", ""),
    ]
    # a rule without backendRefs goes to the parent Service itself
    assert got.http_routes[0].backends == (WeightedDst(_authority("web"), 1000),)
    assert got.http_routes[2].match.headers[0].name == "x-canary"


def test_route_backends_outside_the_namespace_or_missing_fail_their_share() -> None:
    route = http_route(
        route_raw(
            [
                {
                    "backendRefs": [
                        {"name": "web", "port": 80},
                        {"name": "web", "namespace": "other", "port": 80},
                        {"name": "gone", "port": 80},
                        {"kind": "Bucket", "group": "s3", "name": "b"},
                    ]
                }
            ]
        )
    )
    w = watcher(route)
    backends = ip_profile(w).http_routes[0].backends
    assert [b.authority for b in backends] == [_authority("web"), "", "", ""]
    reasons = sorted(p.reason for p in w.problems())
    assert reasons == ["BackendNotFound", "UnsupportedBackend", "UnsupportedBackend"]


def test_a_route_attaches_only_to_its_parent_and_port() -> None:
    to_other_port = http_route(
        route_raw(
            [{"backendRefs": [{"name": "web-v2", "port": 80}]}],
            parent={"group": "", "kind": "Service", "name": "web", "port": 8080},
        )
    )
    assert ip_profile(watcher(to_other_port)).http_routes == ()


@pytest.mark.parametrize(
    ("parent", "reason"),
    [
        ({"group": "core", "kind": "Service", "name": "ghost"}, "ParentNotFound"),
        ({"group": "apps", "kind": "Deployment", "name": "web"}, "UnsupportedParent"),
        ({"kind": "Service", "name": "web", "namespace": "elsewhere"}, "UnsupportedParent"),
    ],
)
def test_routes_with_unknown_parents_are_reported_and_route_nothing(
    parent: dict[str, Any], reason: str
) -> None:
    route = http_route(route_raw([{"backendRefs": [{"name": "web-v2"}]}], parent=parent))
    w = watcher(route)
    assert [p.reason for p in w.problems()] == [reason]
    assert ip_profile(w).http_routes == ()


@pytest.mark.parametrize(
    "parent",
    [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ingress"},
        {"group": "policy.linkerd.io", "kind": "Server", "name": "web-http"},
    ],
)
def test_gateway_and_server_parents_are_not_discovery_s_business(parent: dict[str, Any]) -> None:
    route = http_route(
        route_raw(
            [{"backendRefs": [{"name": "elsewhere"}]}],
            parent=parent,
            group="policy.linkerd.io/v1beta3",
        )
    )
    w = watcher(route)
    assert w.problems() == frozenset()
    assert ip_profile(w).http_routes == ()


def test_listing_one_route_group_keeps_the_other() -> None:
    gw = http_route(route_raw([{"backendRefs": [{"name": "web-v2"}]}], name="gw"))
    pol = http_route(
        route_raw(
            [{"backendRefs": [{"name": "web-east"}]}], name="pol", group="policy.linkerd.io/v1beta3"
        )
    )
    w = watcher(gw, pol)
    assert len(ip_profile(w).http_routes) == 2
    w.apply(Listed(HttpRoute, ()))
    only = ip_profile(w).http_routes
    assert [e.backends[0].authority for e in only] == [_authority("web-east")]


def test_profile_message_carries_routes() -> None:
    route = http_route(
        route_raw(
            [
                {
                    "matches": [
                        {
                            "path": {"type": "RegularExpression", "value": "/v[0-9]+"},
                            "headers": [
                                {"name": "x-user", "type": "RegularExpression", "value": "a.*"}
                            ],
                            "method": "POST",
                        }
                    ],
                    "backendRefs": [{"name": "web-v2", "port": 80, "weight": 0}],
                }
            ]
        )
    )
    message = profile_message(ip_profile(watcher(route)))
    (rule,) = message.http_routes
    (match,) = rule.matches
    assert match.path_kind == pb.HttpRouteMatch.REGULAR_EXPRESSION
    assert match.path == "/v[0-9]+"
    assert match.method == "POST"
    assert match.headers[0].regex
    assert rule.backends[0].authority == _authority("web-v2")
    assert rule.backends[0].weight == 0
