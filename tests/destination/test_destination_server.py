"""The destination service over real gRPC on 127.0.0.1, fed by a fake object source.

The fake stands in for the lightkube watches at our own seam (``ObjectSource``);
everything from the hub to the wire is the production code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import grpc
import pytest
from grpc import aio

from mesh.destination.server import DestinationServer, ServerSettings
from mesh.destination.snapshot import SnapshotEvent
from mesh.k8s.events import Listed, Upserted
from mesh.k8s.objects import EndpointSlice, Pod, Service
from mesh.proto import destination_pb2 as pb
from mesh.proto import destination_pb2_grpc as pb_grpc
from tests.destination.support import CONFIG, endpoint, identity, pod, service, slice_of

READ_TIMEOUT = 5.0
"""How long a test waits for the next message of a stream."""

WEB = service(annotations={"config.linkerd.io/opaque-ports": "3306"})
P1 = pod("web-5d8f7c9b4-aaaaa", "10.0.0.1")
P2 = pod("web-5d8f7c9b4-bbbbb", "10.0.0.2", meshed=False)
AUTHORITY = "web.shop.svc.east.example:80"


class FakeSource:
    """An ``ObjectSource`` the test feeds by hand; ``end()`` makes its stream finish."""

    def __init__(self, *events: SnapshotEvent) -> None:
        self._queue: asyncio.Queue[SnapshotEvent | None] = asyncio.Queue()
        for event in events:
            self.push(event)

    def push(self, event: SnapshotEvent) -> None:
        self._queue.put_nowait(event)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[SnapshotEvent]:
        while (event := await self._queue.get()) is not None:
            yield event


def listed(
    services: list[Service], slices: list[EndpointSlice], pods: list[Pod]
) -> list[SnapshotEvent]:
    return [
        Listed(Service, tuple(services)),
        Listed(EndpointSlice, tuple(slices)),
        Listed(Pod, tuple(pods)),
    ]


class Running:
    def __init__(self, server: DestinationServer, source: FakeSource, port: int) -> None:
        self.server = server
        self.source = source
        self.channel = aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.DestinationStub(self.channel)

    def get(self, path: str) -> aio.UnaryStreamCall[pb.GetDestination, pb.Update]:
        return self.stub.Get(pb.GetDestination(scheme="k8s", path=path))

    def get_profile(
        self, path: str
    ) -> aio.UnaryStreamCall[pb.GetDestination, pb.DestinationProfile]:
        return self.stub.GetProfile(pb.GetDestination(scheme="k8s", path=path))


async def start(source: FakeSource, settings: ServerSettings | None = None) -> Running:
    server = DestinationServer(CONFIG, source, settings or ServerSettings(shutdown_grace=0.5))
    port = await server.start("127.0.0.1:0")
    return Running(server, source, port)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    source = FakeSource(*listed([WEB], [slice_of(WEB, [endpoint(P1)])], [P1, P2]))
    it = await start(source)
    yield it
    await it.channel.close(None)
    await it.server.stop()


async def read(
    call: aio.UnaryStreamCall[pb.GetDestination, pb.Update]
    | aio.UnaryStreamCall[pb.GetDestination, pb.DestinationProfile],
) -> object:
    return await asyncio.wait_for(call.read(), READ_TIMEOUT)


def addrs(update: pb.Update) -> list[tuple[str, int]]:
    kind = update.WhichOneof("update")
    assert kind in ("add", "remove")
    group = update.add.addrs if kind == "add" else update.remove.addrs
    return [(a.addr.ip, a.addr.port) if kind == "add" else (a.ip, a.port) for a in group]  # type: ignore[union-attr]


async def test_get_streams_the_set_then_its_changes(running: Running) -> None:
    call = running.get(AUTHORITY)
    first = await read(call)
    assert isinstance(first, pb.Update)
    assert first.WhichOneof("update") == "add"
    [addr] = first.add.addrs
    assert (addr.addr.ip, addr.addr.port, addr.weight) == ("10.0.0.1", 8080, 10000)
    assert addr.tls_identity.dns_name == identity("web")
    assert addr.metric_labels["pod"] == P1.name
    assert addr.metric_labels["deployment"] == "web"
    assert dict(first.add.metric_labels) == {"namespace": "shop", "service": "web"}
    assert not addr.HasField("protocol_hint")

    running.source.push(Upserted(slice_of(WEB, [endpoint(P1), endpoint(P2)])))
    second = await read(call)
    assert isinstance(second, pb.Update)
    assert second.WhichOneof("update") == "add"
    assert [(a.addr.ip, a.HasField("tls_identity")) for a in second.add.addrs] == [
        ("10.0.0.2", False)
    ]

    running.source.push(Upserted(slice_of(WEB, [endpoint(P2)])))
    third = await read(call)
    assert isinstance(third, pb.Update)
    assert third.WhichOneof("update") == "remove"
    assert [(a.ip, a.port) for a in third.remove.addrs] == [("10.0.0.1", 8080)]

    running.source.push(Upserted(slice_of(WEB, [])))
    fourth = await read(call)
    assert isinstance(fourth, pb.Update)
    assert fourth.WhichOneof("update") == "no_endpoints"
    assert fourth.no_endpoints.exists
    call.cancel()


async def test_opaque_endpoints_carry_the_hint(running: Running) -> None:
    call = running.get("web.shop.svc.east.example:3306")
    first = await read(call)
    assert isinstance(first, pb.Update)
    [addr] = first.add.addrs
    assert addr.addr.port == 3306
    assert addr.protocol_hint.WhichOneof("protocol") == "opaque"
    assert addr.protocol_hint.opaque_transport.inbound_port == 4143
    call.cancel()


async def test_unknown_service_does_not_exist(running: Running) -> None:
    call = running.get("nope.shop.svc.east.example:80")
    first = await read(call)
    assert isinstance(first, pb.Update)
    assert first.WhichOneof("update") == "no_endpoints"
    assert not first.no_endpoints.exists
    running.source.push(Upserted(replace(WEB, name="nope")))
    second = await read(call)
    assert isinstance(second, pb.Update)
    assert second.no_endpoints.exists
    call.cancel()


@pytest.mark.parametrize(
    ("scheme", "path", "message"),
    [
        ("k8s", "example.com:80", "not a service in this cluster's domain"),
        ("k8s", "web.shop.svc.east.example:http", "not a number"),
        ("dns", AUTHORITY, "unsupported scheme"),
    ],
)
async def test_bad_requests_are_invalid_arguments(
    running: Running, scheme: str, path: str, message: str
) -> None:
    for rpc in (running.stub.Get, running.stub.GetProfile):
        call = rpc(pb.GetDestination(scheme=scheme, path=path))
        with pytest.raises(aio.AioRpcError) as err:
            await read(call)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.value.details() or "")


async def test_get_profile_follows_the_service(running: Running) -> None:
    call = running.get_profile(AUTHORITY)
    first = await read(call)
    assert isinstance(first, pb.DestinationProfile)
    assert first.fully_qualified_name == "web.shop.svc.east.example"
    assert not first.opaque_protocol
    assert not first.HasField("endpoint")

    running.source.push(
        Upserted(replace(WEB, annotations={"config.linkerd.io/opaque-ports": "80"}))
    )
    second = await read(call)
    assert isinstance(second, pb.DestinationProfile)
    assert second.opaque_protocol
    call.cancel()


async def test_get_profile_of_a_pod_ip_is_its_endpoint(running: Running) -> None:
    call = running.get_profile("10.0.0.1:8080")
    first = await read(call)
    assert isinstance(first, pb.DestinationProfile)
    assert first.fully_qualified_name == ""
    assert (first.endpoint.addr.ip, first.endpoint.addr.port) == ("10.0.0.1", 8080)
    assert first.endpoint.tls_identity.dns_name == identity("web")
    call.cancel()


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds, polling for at most ``READ_TIMEOUT``."""
    interval = 0.01
    for _ in range(int(READ_TIMEOUT / interval)):
        if condition():
            return
        await asyncio.sleep(interval)
    pytest.fail(f"timed out waiting until {what}")


async def test_cancelled_streams_unsubscribe(running: Running) -> None:
    get, get_profile = running.get(AUTHORITY), running.get_profile(AUTHORITY)
    await read(get)
    await read(get_profile)
    watcher = running.server.hub.watcher
    assert len(watcher) == 2
    get.cancel()
    get_profile.cancel()
    await _until(lambda: len(watcher) == 0, "both subscriptions are closed")


async def test_streams_wait_for_the_first_listing_then_give_up() -> None:
    source = FakeSource(Listed(Service, (WEB,)))
    it = await start(source, ServerSettings(sync_timeout=0.2, shutdown_grace=0.5))
    try:
        with pytest.raises(aio.AioRpcError) as err:
            await read(it.get(AUTHORITY))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no complete listing" in (err.value.details() or "")

        call = it.get(AUTHORITY)
        source.push(Listed(EndpointSlice, ()))
        source.push(Listed(Pod, ()))
        first = await read(call)
        assert isinstance(first, pb.Update)
        assert first.no_endpoints.exists
        call.cancel()
    finally:
        await it.channel.close(None)
        await it.server.stop()


async def test_streams_end_unavailable_when_the_source_ends(running: Running) -> None:
    call = running.get(AUTHORITY)
    await read(call)
    running.source.end()
    with pytest.raises(aio.AioRpcError) as err:
        await read(call)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    await running.server.wait()


# -- remote discovery over the wire -------------------------------------------------------------

RD_MIRROR = replace(
    service("web-west", cluster_ip="10.96.0.77"),
    labels={
        "mirror.linkerd.io/mirrored-service": "true",
        "multicluster.linkerd.io/remote-discovery": "west",
        "multicluster.linkerd.io/remote-service": "web",
    },
)
RD_AUTHORITY = "web-west.shop.svc.east.example:80"


async def test_get_of_an_unlinked_cluster_is_not_found_at_once() -> None:
    from mesh.destination.remote import ClusterNotFound, LinksListed

    source = FakeSource(*listed([RD_MIRROR], [], []))
    source.push(ClusterNotFound("west", "no Link targets it"))  # type: ignore[arg-type]
    source.push(LinksListed())  # type: ignore[arg-type]
    it = await start(source)
    try:
        call = it.get(RD_AUTHORITY)
        with pytest.raises(aio.AioRpcError) as e:
            await read(call)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "remote cluster not found: west" in (e.value.details() or "")
    finally:
        await it.channel.close(None)
        await it.server.stop()


def west_linked(remote_pod: Pod) -> FakeSource:
    """A source with the remote-discovery mirror and cluster ``west`` linked, serving ``web``
    with ``remote_pod`` as its one endpoint."""
    from mesh.destination.remote import ClusterLinked, LinksListed, RemoteObjects

    source = FakeSource(*listed([RD_MIRROR], [], []))
    for event in (
        ClusterLinked("west", 1, "west.example"),
        LinksListed(),
        RemoteObjects("west", 1, Listed(Service, (WEB,))),
        RemoteObjects("west", 1, Listed(EndpointSlice, (slice_of(WEB, [endpoint(remote_pod)]),))),
        RemoteObjects("west", 1, Listed(Pod, (remote_pod,))),
    ):
        source.push(event)  # type: ignore[arg-type]
    return source


async def test_get_of_a_linked_cluster_streams_its_pods_with_target_labels() -> None:

    remote_pod = pod("web-5d8f7c9b4-ccccc", "10.9.0.3")
    source = west_linked(remote_pod)
    it = await start(source)
    try:
        first = await read(it.get(RD_AUTHORITY))
        assert isinstance(first, pb.Update)
        assert addrs(first) == [("10.9.0.3", 8080)]
        [addr] = first.add.addrs
        assert addr.metric_labels["target_cluster"] == "west"
        assert addr.metric_labels["target_service"] == "web"
        assert addr.metric_labels["target_service_namespace"] == "shop"
        assert addr.tls_identity.dns_name == identity("web")
    finally:
        await it.channel.close(None)
        await it.server.stop()


async def test_a_stream_whose_cluster_goes_away_ends_not_found() -> None:
    from mesh.destination.remote import ClusterNotFound

    remote_pod = pod("web-5d8f7c9b4-ddddd", "10.9.0.4")
    source = west_linked(remote_pod)
    it = await start(source)
    try:
        call = it.get(RD_AUTHORITY)
        first = await read(call)
        assert isinstance(first, pb.Update)
        assert first.WhichOneof("update") == "add"
        source.push(ClusterNotFound("west", "Secret cluster-credentials-west is unusable"))  # type: ignore[arg-type]
        emptied = await read(call)
        assert isinstance(emptied, pb.Update)
        assert emptied.WhichOneof("update") == "no_endpoints", emptied
        assert not emptied.no_endpoints.exists
        with pytest.raises(aio.AioRpcError) as e:
            await read(call)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "remote cluster not found: west" in (e.value.details() or "")
    finally:
        await it.channel.close(None)
        await it.server.stop()


async def test_a_streaming_proxy_drops_the_endpoints_of_a_cluster_whose_credentials_break() -> None:
    """The proxy's own discovery client keeps the last endpoints of a stream that merely
    ends; the stream is emptied first, so it holds none (and re-asks, NOT_FOUND at once)."""
    from mesh.destination.remote import ClusterNotFound
    from mesh.proxy.backoff import BackoffSettings
    from mesh.proxy.discovery import EndpointSet, Replace
    from mesh.proxy.discovery import Resolution as ProxyResolution
    from mesh.proxy.discovery_client import DestinationClient
    from mesh.proxy.envconfig import DestinationSettings, ServiceAddr

    remote_pod = pod("web-5d8f7c9b4-eeeee", "10.9.0.5")
    source = west_linked(remote_pod)
    it = await start(source)
    settings = DestinationSettings(
        svc=ServiceAddr("127.0.0.1", 1), context="{}", profile_suffixes=("svc.east.example",)
    )
    client = DestinationClient(settings, it.channel, backoff=BackoffSettings(0.02, 0.1))
    seen = EndpointSet()
    try:
        async with contextlib.aclosing(client.resolve(RD_AUTHORITY)) as updates:
            first = await asyncio.wait_for(anext(updates), READ_TIMEOUT)
            assert isinstance(first, Replace)
            seen.apply(first)
            assert [a.host for a in seen.endpoints] == ["10.9.0.5"]
            source.push(ClusterNotFound("west", "Secret cluster-credentials-west is missing"))  # type: ignore[arg-type]
            emptied = await asyncio.wait_for(anext(updates), READ_TIMEOUT)
            seen.apply(emptied)
            assert not seen.endpoints, f"the proxy still holds {list(seen.endpoints)}"
            assert seen.state is ProxyResolution.NO_ENDPOINTS
            with pytest.raises(TimeoutError):  # re-asked, NOT_FOUND: nothing new to apply
                await asyncio.wait_for(anext(updates), 0.3)
    finally:
        await it.channel.close(None)
        await it.server.stop()
