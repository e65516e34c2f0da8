"""``python -m bench.splits``: what traffic splits cost and how fast weight changes land.

Two figures, both in one process on loopback, no cluster needed:

- ``choose``: the proxy's per-request routing decision (``Destinations.choose``,
  endpoint pick and release included) for a Service routed directly, split by a
  TrafficSplit (2 backends) and routed by an HTTPRoute (3 rules: a header match, a
  path prefix, a catch-all of 3 weighted backends). Printed as microseconds per
  request; the difference to ``direct`` is what a split adds.
- ``settle``: a weight change to the apex's TrafficSplit fed to the real destination
  service (as a watch event) until the proxy's discovery client (over gRPC) has the
  new weights, after which every draw follows them. p50 / max over the changes.
  This leaves out the API server's watch latency; ``suites/split`` records the end
  to end figure on real clusters (evidence ``shift settle seconds``).

    python -m bench.splits [--draws 20000] [--changes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mesh.destination.config import DiscoveryConfig
from mesh.destination.server import DestinationServer, ServerSettings
from mesh.destination.snapshot import SnapshotEvent
from mesh.destination.split_objects import HttpRoute, PolicyHttpRoute, SplitBackend, TrafficSplit
from mesh.k8s.events import Listed, Upserted
from mesh.k8s.objects import EndpointSlice, Pod, Service, ServicePort
from mesh.proxy.discovery import Add, Address, Backend, Endpoint, NotFound, Split, Update
from mesh.proxy.discovery_client import DestinationClient
from mesh.proxy.envconfig import DestinationSettings, ServiceAddr
from mesh.proxy.policy import Network
from mesh.proxy.resolve import Destinations
from mesh.proxy.routes import HeaderMatch, PathKind, Route, RouteMatch

NS = "bench"
DOMAIN = "cluster.local"
APEX_IP = "10.96.0.10"
PORT = 8080
WAIT = 10.0
"""Seconds a change may take to reach the proxy before the bench gives up."""


@dataclass(frozen=True)
class _Request:
    method: str = "GET"
    path: str = "/api/items"
    headers: tuple[tuple[bytes, bytes], ...] = ((b"host", b"web"), (b"user-agent", b"bench"))


class _Static:
    """Discovery that answers from a table and never changes."""

    def __init__(self, table: dict[str, list[Update]]) -> None:
        self.table = table

    async def resolve(self, target: str) -> AsyncIterator[Update]:
        for update in self.table.get(target, [NotFound()]):
            yield update
        await asyncio.Event().wait()


def _endpoints(n: int, base: int) -> Add:
    return Add(tuple(Endpoint(Address(f"10.42.0.{base + i}", PORT)) for i in range(n)))


ROUTED: dict[str, list[Update]] = {
    "direct": [_endpoints(3, 1)],
    "trafficsplit": [Split((Backend("a:8080", 500.0), Backend("b:8080", 500.0)))],
    "httproute": [
        Split(
            (),
            (
                Route(RouteMatch(headers=(HeaderMatch(b"x-canary", "1"),)), (Backend("b:8080"),)),
                Route(RouteMatch(PathKind.PREFIX, "/admin"), (Backend("a:8080"),)),
                Route(
                    RouteMatch(),
                    (Backend("a:8080", 1.0), Backend("b:8080", 1.0), Backend("c:8080", 2.0)),
                ),
            ),
        )
    ],
}


async def choose_cost(draws: int) -> dict[str, float]:
    """Microseconds per routing decision, per mode."""
    loop = asyncio.get_running_loop()
    figures = {}
    for mode, updates in ROUTED.items():
        table = {
            "apex:8080": updates,
            "a:8080": [_endpoints(3, 10)],
            "b:8080": [_endpoints(3, 20)],
            "c:8080": [_endpoints(3, 30)],
        }
        destinations = Destinations(
            _Static(table), clock=loop.time, rng=random.Random(1), decay=10.0, default_rtt=0.03
        )
        try:
            apex = destinations.get("apex:8080")
            request = _Request()
            for _ in range(200):  # warm: watches answered, backends resolved
                await destinations.choose(apex, loop.time() + WAIT, request)
            started = time.perf_counter()
            for _ in range(draws):
                choice = await destinations.choose(apex, loop.time() + WAIT, request)
                if choice.lease is not None and choice.balancer is not None:
                    choice.balancer.release(choice.lease)
            figures[mode] = (time.perf_counter() - started) / draws * 1e6
        finally:
            await destinations.close()
    return figures


class _Feed:
    """An ``ObjectSource`` fed by the bench."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SnapshotEvent | None] = asyncio.Queue()

    async def events(self) -> AsyncIterator[SnapshotEvent]:
        while (event := await self.queue.get()) is not None:
            yield event


def _service(name: str, ip: str) -> Service:
    return Service(
        namespace=NS,
        name=name,
        ports=(ServicePort(PORT, "http", target_port=PORT),),
        cluster_ip=ip,
        cluster_ips=(ip,),
    )


def _split(a: int, b: int) -> TrafficSplit:
    return TrafficSplit(NS, "web", "web", (SplitBackend("web-a", a), SplitBackend("web-b", b)))


async def settle(changes: int) -> list[float]:
    """Seconds from each weight change fed to destination until the proxy has it."""
    loop = asyncio.get_running_loop()
    feed = _Feed()
    services = [
        _service("web", APEX_IP),
        _service("web-a", "10.96.0.11"),
        _service("web-b", "10.96.0.12"),
    ]
    for event in (
        Listed(Service, tuple(services)),
        Listed(EndpointSlice, ()),
        Listed(Pod, ()),
        Listed(TrafficSplit, (_split(1000, 0),)),
        Listed(HttpRoute, ()),
        Listed(PolicyHttpRoute, ()),
    ):
        feed.queue.put_nowait(event)  # type: ignore[arg-type]
    server = DestinationServer(
        DiscoveryConfig(cluster_domain=DOMAIN), feed, ServerSettings(shutdown_grace=0.5)
    )
    port = await server.start("127.0.0.1:0")
    settings = DestinationSettings(
        svc=ServiceAddr("127.0.0.1", port),
        profile_suffixes=(f"svc.{DOMAIN}",),
        profile_networks=(Network.parse("10.96.0.0/16"),),
    )
    from grpc import aio

    took: list[float] = []
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        destinations = Destinations(
            DestinationClient(settings, channel),
            clock=loop.time,
            rng=random.Random(1),
            decay=10.0,
            default_rtt=0.03,
        )
        try:
            apex = destinations.get(f"{APEX_IP}:{PORT}")
            for i in range(changes + 1):
                a, b = (0, 1000) if i % 2 else (1000, 0)
                want = {f"web-{x}.{NS}.svc.{DOMAIN}:{PORT}" for x, w in (("a", a), ("b", b)) if w}
                started = time.perf_counter()
                if i:
                    feed.queue.put_nowait(Upserted(_split(a, b)))  # type: ignore[arg-type]
                deadline = loop.time() + WAIT
                while {bk.target for bk in apex.endpoints.split} != want:
                    if not await apex.changed(deadline):
                        raise TimeoutError(f"change {i} did not reach the proxy in {WAIT:g}s")
                if i:  # the first only waits for the initial profile
                    took.append(time.perf_counter() - started)
        finally:
            await destinations.close()
            await server.stop()
    return took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.splits", description=__doc__)
    parser.add_argument("--draws", type=int, default=20000, help="routing decisions per mode")
    parser.add_argument("--changes", type=int, default=50, help="weight changes timed")
    args = parser.parse_args(argv)
    costs = asyncio.run(choose_cost(args.draws))
    print(f"routing decision per request ({args.draws} draws, microseconds):")
    for mode, us in costs.items():
        extra = "" if mode == "direct" else f"  (+{us - costs['direct']:.1f} vs direct)"
        print(f"  {mode:<14} {us:8.1f}{extra}")
    took = asyncio.run(settle(args.changes))
    ms = sorted(t * 1000 for t in took)
    print(
        f"weight change -> proxy has the new weights ({len(ms)} changes, in-process gRPC): "
        f"p50 {statistics.median(ms):.2f} ms, max {ms[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
