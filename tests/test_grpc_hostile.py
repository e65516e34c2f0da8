"""SEC-1 on the control plane's gRPC listeners (identity, destination, policy).

Each service is started for real, its ``grpc_server`` swapped for one with
tight limits (so slow clients show in a second), then sent hostile input:
silence, a partial HTTP/2 preface, garbage, an HTTP/1 request, an oversized
message and oversized metadata. The hostile connection must end (or the call
fail RESOURCE_EXHAUSTED) within a bound while an RPC on another channel is
answered promptly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc import aio

from mesh import serving
from mesh.destination import server as destination_server
from mesh.destination.snapshot import SnapshotEvent
from mesh.identity import service as identity_service
from mesh.policy import server as policy_server
from mesh.proto import identity_pb2_grpc
from mesh.serving import GrpcLimits, ServerSettings
from tests.destination.support import CONFIG as DESTINATION_CONFIG
from tests.policy.support import CONFIG as POLICY_CONFIG

TIGHT = GrpcLimits(
    max_message=16 * 1024,
    max_metadata=8 * 1024,
    handshake_timeout=0.5,
    max_connection_idle=2.0,
    keepalive_time=1.0,
    keepalive_timeout=1.0,
)
CLOSED_WITHIN = 3.0
HEALTHY_WITHIN = 2.0
METHODS = {
    "identity": "/isthmus.identity.v1.Identity/Certify",
    "destination": "/isthmus.destination.v1.Destination/Get",
    "policy": "/isthmus.policy.v1.InboundServerPolicies/WatchPort",
}
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _QuietSource:
    """A cluster feed that lists nothing and never changes (the services only need to run)."""

    async def events(self) -> AsyncIterator[SnapshotEvent]:
        await asyncio.Event().wait()
        yield  # type: ignore[misc]  # pragma: no cover


@dataclass
class Service:
    name: str
    port: int
    stop: Callable[[], Awaitable[None]]


async def _start(name: str, monkeypatch: pytest.MonkeyPatch) -> Service:
    made: list[aio.Server] = []

    def tight_server(limits: GrpcLimits = TIGHT) -> aio.Server:
        server = serving.grpc_server(TIGHT)
        made.append(server)
        return server

    settings = ServerSettings(shutdown_grace=0.2)
    if name == "identity":
        monkeypatch.setattr(identity_service, "grpc_server", tight_server)
        ident = identity_service.IdentityServer(
            identity_pb2_grpc.IdentityServicer(), identity_service.ServerSettings(0.2)
        )
        port = await ident.start("127.0.0.1:0")
        service = Service(name, port, ident.stop)
    elif name == "destination":
        monkeypatch.setattr(destination_server, "grpc_server", tight_server)
        dest = destination_server.DestinationServer(DESTINATION_CONFIG, _QuietSource(), settings)
        port = await dest.start("127.0.0.1:0")
        service = Service(name, port, dest.stop)
    else:
        monkeypatch.setattr(policy_server, "grpc_server", tight_server)
        pol = policy_server.PolicyServer(POLICY_CONFIG, _QuietSource(), settings)
        port, _ = await pol.start("127.0.0.1:0")
        service = Service(name, port, pol.stop)
    assert len(made) == 1, f"{name} did not build its server with grpc_server (SEC-1 limits)"
    return service


@pytest.fixture(params=sorted(METHODS))
async def service(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Service]:
    running = await _start(request.param, monkeypatch)
    try:
        yield running
    finally:
        await running.stop()


async def _healthy(port: int) -> float:
    """Seconds a fresh channel takes to get an answer (UNIMPLEMENTED for an unknown method)."""
    started = time.monotonic()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/isthmus.test.v1.Nothing/Ping")
        with pytest.raises(aio.AioRpcError) as raised:
            await call(b"", timeout=HEALTHY_WITHIN)
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED, raised.value
    return time.monotonic() - started


async def _until_closed(reader: asyncio.StreamReader) -> float:
    started = time.monotonic()
    async with asyncio.timeout(CLOSED_WITHIN):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


@pytest.mark.parametrize(
    "data",
    [b"", _PREFACE[:10], _PREFACE, b"\x00\xff" * 512, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
    ids=["silent", "partial-preface", "preface-only", "garbage", "http1"],
)
async def test_a_hostile_connection_is_closed_and_costs_nobody_else(
    service: Service, data: bytes
) -> None:
    """SEC-1: the connection ends within CLOSED_WITHIN; a healthy RPC is answered meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(data)
        took = await _healthy(service.port)
        assert took < HEALTHY_WITHIN, f"{service.name}: healthy RPC took {took:.2f}s"
        try:
            await _until_closed(reader)
        except TimeoutError:
            pytest.fail(f"{service.name}: a {data[:12]!r} connection stayed open")
    finally:
        writer.close()


async def test_many_silent_connections_do_not_starve_rpcs(service: Service) -> None:
    """SEC-1: 50 connections that never speak; RPCs stay prompt; all are closed."""
    conns = [await asyncio.open_connection("127.0.0.1", service.port) for _ in range(50)]
    try:
        for _ in range(3):
            took = await _healthy(service.port)
            assert took < HEALTHY_WITHIN, f"{service.name}: healthy RPC took {took:.2f}s"
        await asyncio.gather(*(_until_closed(reader) for reader, _ in conns))
    finally:
        for _, writer in conns:
            writer.close()


@pytest.mark.parametrize("what", ["message", "metadata"])
async def test_oversized_requests_fail_resource_exhausted(service: Service, what: str) -> None:
    """SEC-1: a message or metadata over the limit is refused, not buffered."""
    method = METHODS[service.name]
    payload = b"\x0a" + b"x" * (TIGHT.max_message * 4) if what == "message" else b""
    metadata: Any = (("x-big", "a" * (TIGHT.max_metadata * 2)),) if what == "metadata" else None
    async with aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        if service.name == "identity":
            unary = channel.unary_unary(method)
            with pytest.raises(aio.AioRpcError) as raised:
                await unary(payload, metadata=metadata, timeout=HEALTHY_WITHIN)
        else:
            stream = channel.unary_stream(method)
            with pytest.raises(aio.AioRpcError) as raised:
                async for _ in stream(payload, metadata=metadata, timeout=HEALTHY_WITHIN):
                    pass
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, (
        f"{service.name}: an oversized {what} got {raised.value.code()}, "
        "expected RESOURCE_EXHAUSTED"
    )
    took = await _healthy(service.port)
    assert took < HEALTHY_WITHIN


@pytest.mark.parametrize(
    "data", [b"", b"GET /ready HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "partial"]
)
async def test_the_policy_admin_port_closes_slow_clients(data: bytes) -> None:
    """SEC-1: the policy controller's plain-HTTP admin port bounds slow clients too."""
    settings = ServerSettings(shutdown_grace=0.2, admin_keepalive=0.5)
    pol = policy_server.PolicyServer(POLICY_CONFIG, _QuietSource(), settings)
    _, admin = await pol.start("127.0.0.1:0", admin=("127.0.0.1", 0))
    assert admin is not None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", admin)
        writer.write(data)
        try:
            took = await _until_closed(reader)
        except TimeoutError:
            pytest.fail(f"the policy admin port kept a {data[:12]!r} connection open")
        finally:
            writer.close()
        assert took < CLOSED_WITHIN
    finally:
        await pol.stop()
