"""Traffic splits through the destination service over gRPC, and their problem Events."""

from __future__ import annotations

import asyncio
from typing import Any

from mesh.destination.server import DiscoveryHub
from mesh.destination.split_objects import HttpRoute, PolicyHttpRoute, SplitBackend, TrafficSplit
from mesh.destination.split_watch import ProblemReporter
from mesh.destination.splits import Problem
from mesh.destination.watcher import DestinationWatcher
from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.proto import destination_pb2 as pb
from tests.destination.support import CONFIG, NS, service
from tests.destination.test_destination_server import FakeSource, listed, read, start

APEX = service("web", cluster_ip="10.96.0.10")
EAST = service("web-east", cluster_ip="10.96.0.12")
DOMAIN = CONFIG.cluster_domain


def split(local: int, remote: int, apex: str = "web") -> TrafficSplit:
    """A split on ``apex``; weights in milli-units, as converted objects hold them."""
    return TrafficSplit(
        NS, "web-split", apex, (SplitBackend("web", local), SplitBackend("web-east", remote))
    )


async def test_weight_changes_stream_to_get_profile_and_deletion_ends_the_split() -> None:
    source = FakeSource(*listed([APEX, EAST], [], []))
    for kind in (TrafficSplit, HttpRoute, PolicyHttpRoute):
        source.push(Listed(kind, ()))  # type: ignore[arg-type]
    running = await start(source)
    try:
        call = running.get_profile("10.96.0.10:80")
        first = await read(call)
        assert isinstance(first, pb.DestinationProfile)
        assert list(first.dst_overrides) == []
        source.push(Upserted(split(0, 100)))  # type: ignore[arg-type]
        shifted = await read(call)
        assert isinstance(shifted, pb.DestinationProfile)
        assert [(d.authority, d.weight) for d in shifted.dst_overrides] == [
            (f"web.{NS}.svc.{DOMAIN}:80", 0),
            (f"web-east.{NS}.svc.{DOMAIN}:80", 100),
        ]
        source.push(Deleted(split(0, 100)))  # type: ignore[arg-type]
        direct = await read(call)
        assert isinstance(direct, pb.DestinationProfile)
        assert list(direct.dst_overrides) == []
        assert direct.fully_qualified_name == f"web.{NS}.svc.{DOMAIN}"
    finally:
        await running.channel.close(None)
        await running.server.stop()


class EventClient:
    def __init__(self, fail: bool = False) -> None:
        self.created: list[Any] = []
        self.fail = fail

    async def create(self, event: Any) -> Any:
        if self.fail:
            raise PermissionError("events is forbidden")
        self.created.append(event)
        return event


def _problem(reason: str, name: str = "web-split") -> Problem:
    return Problem(
        "TrafficSplit", NS, name, reason, f"{reason} happened", "split.smi-spec.io/v1alpha2"
    )


async def test_problems_are_reported_once_and_again_after_a_fix() -> None:
    client = EventClient()
    reporter = ProblemReporter(client, "linkerd-destination")  # type: ignore[arg-type]
    missing, zero = _problem("ApexNotFound"), _problem("NoWeight", "other")
    reporter(frozenset({missing}))
    reporter(frozenset({missing, zero}))
    reporter(frozenset({missing, zero}))
    await reporter.close()
    assert [(e.reason, e.involvedObject.name, e.type) for e in client.created] == [
        ("ApexNotFound", "web-split", "Warning"),
        ("NoWeight", "other", "Warning"),
    ]
    assert client.created[0].metadata.namespace == NS
    assert client.created[0].source.component == "linkerd-destination"
    reporter(frozenset())  # fixed
    reporter(frozenset({missing}))  # broken again: reported again
    await reporter.close()
    assert [e.reason for e in client.created] == ["ApexNotFound", "NoWeight", "ApexNotFound"]


async def test_a_failing_event_write_does_not_stop_reporting() -> None:
    reporter = ProblemReporter(EventClient(fail=True), "linkerd-destination")  # type: ignore[arg-type]
    reporter(frozenset({_problem("ApexNotFound")}))
    await reporter.close()  # logged, not raised


async def test_the_hub_tells_problems_once_synced() -> None:
    told: list[frozenset[Problem]] = []
    hub = DiscoveryHub(DestinationWatcher(CONFIG), on_problems=told.append)
    source = FakeSource(*listed([APEX], [], []))
    source.push(Listed(TrafficSplit, (split(1, 1, apex="ghost"),)))  # type: ignore[arg-type]
    source.end()
    await asyncio.wait_for(hub.run(source), 5)
    assert told, "the hub never told the reporter"
    assert {p.reason for p in told[-1]} == {"ApexNotFound", "BackendNotFound"}
