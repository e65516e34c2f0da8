"""HTTP routes in the proxy: matching, profile messages to routes, per-request backend choice."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from mesh.proto import destination_pb2 as dpb
from mesh.proxy.discovery import Add, Address, Backend, Endpoint, Split
from mesh.proxy.discovery_client import routes_from
from mesh.proxy.resolve import Destinations
from mesh.proxy.routes import (
    HeaderMatch,
    PathKind,
    Route,
    RouteMatch,
    catch_all,
    matches,
    select,
)
from tests.proxy.proxy_support import FakeDiscovery

A = Address("10.42.0.1", 8080)
B = Address("10.42.0.2", 8080)
C = Address("10.42.0.3", 8080)


@dataclass(frozen=True)
class Req:
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[bytes, bytes], ...] = ()


@pytest.mark.parametrize(
    ("match", "request_", "expected"),
    [
        (RouteMatch(), Req(path="/anything?q=1"), True),
        (RouteMatch(PathKind.PREFIX, "/api"), Req(path="/api"), True),
        (RouteMatch(PathKind.PREFIX, "/api"), Req(path="/api/v1?x"), True),
        (RouteMatch(PathKind.PREFIX, "/api/"), Req(path="/api/v1"), True),
        (RouteMatch(PathKind.PREFIX, "/api"), Req(path="/apix"), False),
        (RouteMatch(PathKind.EXACT, "/api"), Req(path="/api?x=1"), True),
        (RouteMatch(PathKind.EXACT, "/api"), Req(path="/api/"), False),
        (RouteMatch(PathKind.REGEX, "/v[0-9]+"), Req(path="/v12"), True),
        (RouteMatch(PathKind.REGEX, "/v[0-9]+"), Req(path="/v12/x"), False),
        (RouteMatch(PathKind.REGEX, "(["), Req(path="(["), False),
        (RouteMatch(method="POST"), Req(method="post"), True),
        (RouteMatch(method="POST"), Req(method="GET"), False),
        (
            RouteMatch(headers=(HeaderMatch(b"x-canary", "1"),)),
            Req(headers=((b"x-other", b"1"), (b"x-canary", b"1"))),
            True,
        ),
        (RouteMatch(headers=(HeaderMatch(b"x-canary", "1"),)), Req(), False),
        (
            RouteMatch(headers=(HeaderMatch(b"x-user", "a.*", regex=True),)),
            Req(headers=((b"x-user", b"alice"),)),
            True,
        ),
        (
            RouteMatch(headers=(HeaderMatch(b"x-user", "a.*", regex=True),)),
            Req(headers=((b"x-user", b"bob"),)),
            False,
        ),
    ],
)
def test_matches(match: RouteMatch, request_: Req, expected: bool) -> None:
    assert matches(match, request_) is expected


def test_select_takes_the_first_matching_route_and_catch_all_the_unconditional_one() -> None:
    canary = Route(RouteMatch(headers=(HeaderMatch(b"x-canary", "1"),)), (Backend("b:80"),))
    rest = Route(RouteMatch(), (Backend("a:80"),))
    assert select((canary, rest), Req(headers=((b"x-canary", b"1"),))) is canary
    assert select((canary, rest), Req()) is rest
    assert select((canary,), Req()) is None
    assert catch_all((canary, rest)) is rest
    assert catch_all((canary,)) is None


def test_profile_routes_become_proxy_routes() -> None:
    profile = dpb.DestinationProfile(
        http_routes=[
            dpb.HttpRouteRule(
                matches=[
                    dpb.HttpRouteMatch(
                        path_kind=dpb.HttpRouteMatch.EXACT,
                        path="/x",
                        headers=[dpb.HttpHeaderMatch(name="X-A", value="1")],
                        method="get",
                    )
                ],
                backends=[
                    dpb.WeightedDst(authority="b.ns.svc.cluster.local:80", weight=2000),
                    dpb.WeightedDst(authority="", weight=1000),
                    dpb.WeightedDst(authority="z.ns.svc.cluster.local:80", weight=0),
                ],
            ),
            dpb.HttpRouteRule(backends=[dpb.WeightedDst(authority="a:80", weight=1)]),
        ]
    )
    assert routes_from(profile) == (
        Route(
            RouteMatch(PathKind.EXACT, "/x", (HeaderMatch(b"x-a", "1"),), "GET"),
            (Backend("b.ns.svc.cluster.local:80", 2000.0), Backend(None, 1000.0)),
        ),
        Route(RouteMatch(), (Backend("a:80", 1.0),)),
    )


async def _destinations(discovery: FakeDiscovery) -> Destinations:
    loop = asyncio.get_running_loop()
    return Destinations(
        discovery, clock=loop.time, rng=random.Random(7), decay=10.0, default_rtt=0.03
    )


async def test_requests_take_their_route_s_backends() -> None:
    """CONF-40: matches choose between rules; weights divide each rule's requests."""
    loop = asyncio.get_running_loop()
    discovery = FakeDiscovery()
    canary = Route(RouteMatch(headers=(HeaderMatch(b"x-canary", "1"),)), (Backend("c:80"),))
    api = Route(RouteMatch(PathKind.PREFIX, "/api"), (Backend("a:80", 1.0), Backend("b:80", 1.0)))
    discovery.push("apex:80", Split((), (canary, api)))
    for target, address in (("a:80", A), ("b:80", B), ("c:80", C)):
        discovery.push(target, Add((Endpoint(address),)))
    destinations = await _destinations(discovery)
    try:
        apex = destinations.get("apex:80")
        deadline = loop.time() + 2
        picked = await destinations.choose(apex, deadline, Req(headers=((b"x-canary", b"1"),)))
        assert picked.endpoint == Endpoint(C)
        seen = set()
        for _ in range(60):
            choice = await destinations.choose(apex, deadline, Req(path="/api/items"))
            assert choice.endpoint is not None
            seen.add(choice.endpoint.address)
        assert seen == {A, B}
        unmatched = await destinations.choose(apex, deadline, Req(path="/other"))
        assert (unmatched.status, unmatched.failure) == (404, "no HTTP route matches the request")
    finally:
        await destinations.close()


async def test_route_edge_cases_missing_backend_zero_weights_and_tcp() -> None:
    loop = asyncio.get_running_loop()
    discovery = FakeDiscovery()
    discovery.push(
        "apex:80",
        Split(
            (),
            (
                Route(RouteMatch(PathKind.EXACT, "/gone"), (Backend(None),)),
                Route(RouteMatch(PathKind.EXACT, "/none"), ()),
            ),
        ),
    )
    discovery.push("apex:80", Add((Endpoint(A),)))
    destinations = await _destinations(discovery)
    try:
        apex = destinations.get("apex:80")
        deadline = loop.time() + 2
        gone = await destinations.choose(apex, deadline, Req(path="/gone"))
        assert (gone.status, gone.failure) == (500, "traffic split backend not found")
        none = await destinations.choose(apex, deadline, Req(path="/none"))
        assert none.status == 500
        # no catch-all route: a TCP connection goes to the apex's own endpoints
        tcp = await destinations.choose(apex, deadline)
        assert tcp.endpoint == Endpoint(A)
        discovery.push("apex:80", Split((), (Route(RouteMatch(), (Backend("b:80"),)),)))
        discovery.push("b:80", Add((Endpoint(B),)))
        await apex.changed(loop.time() + 2)
        tcp = await destinations.choose(apex, loop.time() + 2)
        assert tcp.endpoint == Endpoint(B)
        discovery.push("apex:80", Split())
        await apex.changed(loop.time() + 2)
        direct = await destinations.choose(apex, loop.time() + 2, Req(path="/gone"))
        assert direct.endpoint == Endpoint(A)
    finally:
        await destinations.close()
