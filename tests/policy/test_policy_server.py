"""The policy service over real gRPC on 127.0.0.1, fed by a fake object source.

The fake stands in for the lightkube watches at our own seam (``ObjectSource``);
everything from the hub to the wire is the production code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio

from mesh.install.components import load_component, policy_command
from mesh.install.values import Values
from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.objects import Pod
from mesh.policy import DefaultPolicy, Network
from mesh.policy.server import PolicyServer, ServerSettings, _config, _parser, main
from mesh.policy.snapshot import KINDS, PolicyEvent, PolicyObject
from mesh.proto import inbound_pb2 as pb
from mesh.proto import inbound_pb2_grpc as pb_grpc
from tests.policy.support import CONFIG, identity, meshtls, namespace, pod, policy, ref, server

READ_TIMEOUT = 5.0
"""How long a test waits for the next message of a stream."""

WEB = pod()
POLICY = "config.linkerd.io/default-inbound-policy"


class FakeSource:
    """An ``ObjectSource`` the test feeds by hand; ``end()`` makes its stream finish."""

    def __init__(self, *events: PolicyEvent) -> None:
        self._queue: asyncio.Queue[PolicyEvent | None] = asyncio.Queue()
        for event in events:
            self.push(event)

    def push(self, event: PolicyEvent) -> None:
        self._queue.put_nowait(event)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[PolicyEvent]:
        while (event := await self._queue.get()) is not None:
            yield event


def listed(*objects: PolicyObject) -> list[PolicyEvent]:
    """A complete first listing of ``objects`` (every kind, most of them empty)."""
    events: list[PolicyEvent] = []
    for kind in KINDS:
        of_kind: tuple[Any, ...] = tuple(o for o in objects if type(o) is kind)
        events.append(Listed(kind, of_kind))
    return events


class Running:
    def __init__(self, server: PolicyServer, source: FakeSource, port: int) -> None:
        self.server = server
        self.source = source
        self.channel = aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.InboundServerPoliciesStub(self.channel)

    def watch(self, workload: str, port: int) -> aio.UnaryStreamCall[pb.Workload, pb.Server]:
        return self.stub.WatchPort(pb.Workload(workload=workload, port=port))

    async def close(self) -> None:
        await self.channel.close(None)
        await self.server.stop()


async def start(
    source: FakeSource,
    settings: ServerSettings | None = None,
    admin: tuple[str, int] | None = None,
) -> tuple[Running, int | None]:
    server = PolicyServer(CONFIG, source, settings or ServerSettings(shutdown_grace=0.5))
    port, admin_port = await server.start("127.0.0.1:0", admin)
    return Running(server, source, port), admin_port


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    it, _ = await start(FakeSource(*listed(WEB, namespace())))
    yield it
    await it.close()


async def read(call: aio.UnaryStreamCall[pb.Workload, pb.Server]) -> pb.Server:
    message = await asyncio.wait_for(call.read(), READ_TIMEOUT)
    assert isinstance(message, pb.Server)
    return message


def authz_names(message: pb.Server) -> list[str]:
    return [a.labels["name"] for a in message.authorizations]


async def test_watch_port_streams_the_policy_then_its_changes(running: Running) -> None:
    call = running.watch("shop:web-0", 8080)
    first = await read(call)
    assert dict(first.labels) == {"group": "", "kind": "default", "name": "all-unauthenticated"}
    assert first.protocol.WhichOneof("kind") == "detect"
    assert first.protocol.detect.timeout.seconds == 10
    [authz] = first.authorizations
    assert [n.net for n in authz.networks] == ["0.0.0.0/0", "::/0"]
    assert authz.authentication.WhichOneof("permit") == "unauthenticated"

    running.source.push(Upserted(replace(WEB, annotations={POLICY: "deny"})))
    second = await read(call)
    assert second.labels["name"] == "deny"
    assert list(second.authorizations) == []

    running.source.push(Upserted(namespace(annotations={POLICY: "all-authenticated"})))
    running.source.push(Upserted(replace(WEB, annotations={})))
    third = await read(call)
    assert third.labels["name"] == "all-authenticated"
    assert list(third.authorizations[0].authentication.tls_authenticated.suffixes) == [""]
    call.cancel()


async def test_policy_resources_push_updates(running: Running) -> None:
    call = running.watch("shop:web-0", 8080)
    await read(call)

    running.source.push(Upserted(server()))
    denied = await read(call)
    assert dict(denied.labels) == {
        "group": "policy.linkerd.io",
        "kind": "server",
        "name": "web-http",
    }
    assert authz_names(denied) == []

    running.source.push(Upserted(meshtls("clients", identity("client"))))
    running.source.push(Upserted(policy("web-authz", ref("MeshTLSAuthentication", "clients"))))
    allowed = await read(call)
    assert authz_names(allowed) == ["web-authz"]
    tls = allowed.authorizations[0].authentication.tls_authenticated
    assert list(tls.identities) == [identity("client")]
    assert allowed.authorizations[0].labels["kind"] == "authorizationpolicy"

    running.source.push(Deleted(server()))
    back = await read(call)
    assert back.labels["name"] == "all-unauthenticated"
    call.cancel()


async def test_unknown_pod_is_not_found(running: Running) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await read(running.watch("shop:nope", 8080))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "pod shop/nope not found"


async def test_a_deleted_pod_ends_its_streams_not_found(running: Running) -> None:
    call = running.watch("shop:web-0", 8080)
    await read(call)
    running.source.push(Deleted(WEB))
    with pytest.raises(aio.AioRpcError) as err:
        await read(call)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "pod shop/web-0 was deleted" in (err.value.details() or "")
    assert len(running.server.hub.watcher) == 0


@pytest.mark.parametrize(
    ("workload", "port", "message"),
    [
        ("web-0", 8080, "is not '<namespace>:<pod>'"),
        ("shop:web-0", 0, "port 0 is not between 1 and 65535"),
        ("shop:web-0", 65536, "port 65536"),
    ],
)
async def test_bad_requests_are_invalid_arguments(
    running: Running, workload: str, port: int, message: str
) -> None:
    with pytest.raises(aio.AioRpcError) as err:
        await read(running.watch(workload, port))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds, polling for at most ``READ_TIMEOUT``."""
    interval = 0.01
    for _ in range(int(READ_TIMEOUT / interval)):
        if condition():
            return
        await asyncio.sleep(interval)
    pytest.fail(f"timed out waiting until {what}")


async def test_cancelled_streams_unsubscribe(running: Running) -> None:
    calls = [running.watch("shop:web-0", p) for p in (8080, 3306, 4191)]
    messages = [await read(c) for c in calls]
    assert [m.protocol.WhichOneof("kind") for m in messages] == ["detect", "opaque", "detect"]
    watcher = running.server.hub.watcher
    assert len(watcher) == 3
    for call in calls:
        call.cancel()
    await _until(lambda: len(watcher) == 0, "every subscription is closed")


async def test_streams_wait_for_the_first_listing_then_give_up() -> None:
    source = FakeSource(Listed(Pod, (WEB,)))
    it, admin = await start(
        source, ServerSettings(sync_timeout=0.2, shutdown_grace=0.5), ("127.0.0.1", 0)
    )
    try:
        assert admin is not None
        async with aiohttp.ClientSession(f"http://127.0.0.1:{admin}") as http:
            async with http.get("/live") as live:
                assert live.status == 200
            async with http.get("/ready") as ready:
                assert ready.status == 503

            with pytest.raises(aio.AioRpcError) as err:
                await read(it.watch("shop:web-0", 8080))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "no complete listing" in (err.value.details() or "")

            call = it.watch("shop:web-0", 8080)
            for event in listed(WEB)[1:]:
                source.push(event)
            first = await read(call)
            assert first.labels["name"] == "all-unauthenticated"
            async with http.get("/ready") as ready:
                assert ready.status == 200
            call.cancel()
    finally:
        await it.close()


async def test_streams_end_unavailable_when_the_source_ends(running: Running) -> None:
    call = running.watch("shop:web-0", 8080)
    await read(call)
    running.source.end()
    with pytest.raises(aio.AioRpcError) as err:
        await read(call)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    await running.server.wait()


def test_main_takes_the_flags_the_install_manifests_give() -> None:
    values = Values(
        cluster_domain="east.example",
        trust_domain="mesh.example",
        default_inbound_policy="cluster-authenticated",
        cluster_networks="10.0.0.0/8,fd00::/8",
    )
    command = policy_command(values)
    assert command[:3] == ["isthmus", "component", "policy"]
    assert load_component("policy") is main
    config = _config(_parser().parse_args(command[3:]))
    assert config.cluster_domain == "east.example"
    assert config.trust_domain == "mesh.example"
    assert config.control_plane_ns == "linkerd"
    assert config.default_policy is DefaultPolicy.CLUSTER_AUTHENTICATED
    assert config.cluster_networks == (Network("10.0.0.0/8"), Network("fd00::/8"))


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--default-inbound-policy", "allow"), ("--cluster-networks", "10.0.0.0/8,nope")],
)
def test_bad_flags_are_refused(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args([flag, value])
    assert value in capsys.readouterr().err
