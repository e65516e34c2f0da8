"""The destination client: messages mapped to the proxy's updates, streams followed and reopened."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from grpc import aio

from mesh.proto import destination_pb2 as dpb
from mesh.proxy.backoff import BackoffSettings
from mesh.proxy.discovery import (
    Add,
    Address,
    Backend,
    Endpoint,
    NoEndpoints,
    NotFound,
    Remove,
    Replace,
    Split,
    Update,
    labels,
)
from mesh.proxy.discovery_client import DestinationClient, NoDiscovery, split_from, update_from
from mesh.proxy.envconfig import DestinationSettings, ServiceAddr
from mesh.proxy.policy import Network
from mesh.proxy.runtime import CHANNEL_OPTIONS
from tests.proxy.proxy_support import LOOPBACK, identity
from tests.proxy_runtime.runtime_support import (
    WAIT,
    FakeDestination,
    GrpcServer,
    add,
    destination_server,
    weighted,
)

BB = identity("bb")
SERVICE_IP = "10.43.0.10:8080"
FQN = "bb.demo.svc.cluster.local"
AUTHORITY = f"{FQN}:8080"
CONTEXT = '{"ns":"demo"}'
QUICK = BackoffSettings(initial=0.02, maximum=0.1)


# --- mapping, sans I/O ------------------------------------------------------------------


def test_the_first_add_of_a_stream_replaces_the_set() -> None:
    message = add(weighted(4143, BB, ip="10.42.0.5", pod="bb-0"), namespace="demo", service="bb")
    endpoint = Endpoint(
        Address("10.42.0.5", 4143), identity=BB, labels=labels(pod="bb-0"), weight=1.0
    )
    set_labels = labels(namespace="demo", service="bb")
    assert update_from(message, first=True) == Replace((endpoint,), set_labels)
    assert update_from(message, first=False) == Add((endpoint,), set_labels)


def test_weights_overrides_and_plaintext_endpoints() -> None:
    gateway = dpb.WeightedAddr(addr=dpb.TcpAddress(ip="172.18.0.2", port=4143), weight=5000)
    gateway.authority_override.authority_override = "bb.demo.svc.west.local:8080"
    plain = dpb.WeightedAddr(addr=dpb.TcpAddress(ip="10.42.0.6", port=80))
    update = update_from(add(gateway, plain), first=False)
    assert isinstance(update, Add)
    first, second = update.endpoints
    assert (first.weight, first.authority_override, first.identity) == (
        0.5,
        "bb.demo.svc.west.local:8080",
        None,
    )
    assert (second.weight, second.identity, second.labels) == (1.0, None, ())


def test_removals_and_empty_sets() -> None:
    remove = dpb.Update(remove=dpb.AddrSet(addrs=[dpb.TcpAddress(ip="10.42.0.5", port=80)]))
    assert update_from(remove, first=False) == Remove((Address("10.42.0.5", 80),))
    gone = dpb.Update(no_endpoints=dpb.NoEndpoints(exists=False))
    assert update_from(gone, first=True) == NoEndpoints(exists=False)
    assert update_from(dpb.Update(), first=True) is None


def test_overrides_become_a_split() -> None:
    profile = dpb.DestinationProfile(
        dst_overrides=[
            dpb.WeightedDst(authority="bb-west.demo.svc.cluster.local:8080", weight=300),
            dpb.WeightedDst(authority="", weight=700),
            dpb.WeightedDst(authority="never.demo.svc.cluster.local:8080", weight=0),
        ]
    )
    assert split_from(profile) == (
        Backend("bb-west.demo.svc.cluster.local:8080", 300.0),
        Backend(None, 700.0),
    )


# --- streams, against a fake destination service ----------------------------------------


@contextlib.asynccontextmanager
async def client_for(server: GrpcServer, **changes: object) -> AsyncIterator[DestinationClient]:
    settings = DestinationSettings(
        svc=ServiceAddr(LOOPBACK, server.port),
        context=CONTEXT,
        profile_suffixes=("svc.cluster.local",),
        profile_networks=(Network.parse("10.0.0.0/8"),),
    )
    async with aio.insecure_channel(settings.svc.grpc_target, options=CHANNEL_OPTIONS) as channel:
        yield DestinationClient(settings, channel, backoff=QUICK)


async def next_update(updates: AsyncIterator[Update]) -> Update:
    async with asyncio.timeout(WAIT):
        return await anext(updates)


def service(fake: FakeDestination, *addrs: dpb.WeightedAddr) -> None:
    fake.profiles[SERVICE_IP] = dpb.DestinationProfile(fully_qualified_name=FQN)
    fake.first[AUTHORITY] = add(*addrs, namespace="demo", service="bb")


async def test_a_service_ip_is_profiled_then_its_endpoints_followed() -> None:
    fake = FakeDestination()
    service(fake, weighted(4143, BB, ip="10.42.0.5", pod="bb-0"))
    async with (
        destination_server(fake) as server,
        client_for(server) as client,
        contextlib.aclosing(client.resolve(SERVICE_IP)) as updates,
    ):
        first = await next_update(updates)
        assert isinstance(first, Replace)
        assert [e.identity for e in first.endpoints] == [BB]
        assert dict(first.labels) == {"namespace": "demo", "service": "bb"}
        fake.push(AUTHORITY, add(weighted(4143, BB, ip="10.42.0.6")))
        assert isinstance(await next_update(updates), Add)
        removed = dpb.TcpAddress(ip="10.42.0.5", port=4143)
        fake.push(AUTHORITY, dpb.Update(remove=dpb.AddrSet(addrs=[removed])))
        assert await next_update(updates) == Remove((Address("10.42.0.5", 4143),))
        fake.push(AUTHORITY, dpb.Update(no_endpoints=dpb.NoEndpoints(exists=True)))
        assert await next_update(updates) == NoEndpoints(exists=True)
    assert fake.calls == [("GetProfile", SERVICE_IP), ("Get", AUTHORITY)]
    assert set(fake.contexts) == {CONTEXT}


async def test_addresses_outside_the_profile_networks_are_not_asked_about() -> None:
    fake = FakeDestination()
    async with destination_server(fake) as server, client_for(server) as client:
        for target in ("192.168.7.7:80", "example.com:443", "not an address"):
            async with contextlib.aclosing(client.resolve(target)) as updates:
                assert await next_update(updates) == NotFound()
    assert fake.calls == []


async def test_an_address_discovery_does_not_know_is_forwarded() -> None:
    """The destination service refuses the authority: forward to the original destination."""
    fake = FakeDestination()
    async with (
        destination_server(fake) as server,
        client_for(server) as client,
        contextlib.aclosing(client.resolve("10.99.0.1:80")) as updates,
    ):
        assert await next_update(updates) == NotFound()


async def test_a_profile_endpoint_is_used_directly() -> None:
    """A pod IP: the profile carries the pod's endpoint and identity."""
    fake = FakeDestination()
    pod = dpb.DestinationProfile(endpoint=weighted(8080, BB, ip="10.42.0.5", namespace="demo"))
    fake.profiles["10.42.0.5:8080"] = pod
    async with (
        destination_server(fake) as server,
        client_for(server) as client,
        contextlib.aclosing(client.resolve("10.42.0.5:8080")) as updates,
    ):
        update = await next_update(updates)
    assert update == Replace(
        (Endpoint(Address("10.42.0.5", 8080), identity=BB, labels=labels(namespace="demo")),)
    )


async def test_a_profile_without_name_or_endpoint_is_not_found() -> None:
    fake = FakeDestination()
    fake.profiles["10.42.0.9:80"] = dpb.DestinationProfile()
    async with (
        destination_server(fake) as server,
        client_for(server) as client,
        contextlib.aclosing(client.resolve("10.42.0.9:80")) as updates,
    ):
        assert await next_update(updates) == NotFound()


async def test_a_split_profile_and_its_backends() -> None:
    """The apex is split; backends (names) are resolved with Get alone."""
    fake = FakeDestination()
    west = "bb-west.demo.svc.cluster.local:8080"
    service(fake, weighted(4143, BB, ip="10.42.0.5"))
    fake.profiles[SERVICE_IP].dst_overrides.append(dpb.WeightedDst(authority=west, weight=1))
    fake.first[west] = add(weighted(4143, BB, ip="172.18.0.9"))
    async with destination_server(fake) as server, client_for(server) as client:
        async with contextlib.aclosing(client.resolve(SERVICE_IP)) as updates:
            assert await next_update(updates) == Split((Backend(west, 1.0),))
            assert isinstance(await next_update(updates), Replace)
        async with contextlib.aclosing(client.resolve(west)) as updates:
            backend = await next_update(updates)
    assert isinstance(backend, Replace)
    assert backend.endpoints[0].address == Address("172.18.0.9", 4143)
    assert ("GetProfile", west) not in fake.calls


async def test_a_dropped_stream_keeps_quiet_then_replaces_the_set() -> None:
    """While discovery is down nothing changes; the reopened stream's whole set replaces the old."""
    fake = FakeDestination()
    service(fake, weighted(4143, BB, ip="10.42.0.5"), weighted(4143, BB, ip="10.42.0.6"))
    server = destination_server(fake)
    await server.start()
    try:
        async with (
            client_for(server) as client,
            contextlib.aclosing(client.resolve(SERVICE_IP)) as updates,
        ):
            assert len((await next_update(updates)).endpoints) == 2  # type: ignore[union-attr]
            await server.stop()
            pending = asyncio.ensure_future(anext(updates))
            await asyncio.sleep(0.3)
            assert not pending.done()
            service(fake, weighted(4143, BB, ip="10.42.0.6"))
            await server.start()
            async with asyncio.timeout(WAIT):
                update = await pending
    finally:
        await server.stop()
    assert isinstance(update, Replace)
    assert [e.address.host for e in update.endpoints] == ["10.42.0.6"]


async def test_discovery_down_from_the_start_forwards_until_it_answers() -> None:
    fake = FakeDestination()
    service(fake, weighted(4143, BB, ip="10.42.0.5"))
    server = destination_server(fake)
    try:
        async with (
            client_for(server) as client,
            contextlib.aclosing(client.resolve(SERVICE_IP)) as updates,
        ):
            assert await next_update(updates) == NotFound()
            await server.start()
            assert isinstance(await next_update(updates), Replace)
    finally:
        await server.stop()


@pytest.mark.parametrize("target", ["10.43.0.10:80", "anything"])
async def test_without_a_destination_service_everything_is_forwarded(target: str) -> None:
    async with contextlib.aclosing(NoDiscovery().resolve(target)) as updates:
        assert await next_update(updates) == NotFound()
