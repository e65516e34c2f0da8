"""Smaller pieces: endpoint sets, destinations, the pool, exchanges, and the sans-I/O rule."""

from __future__ import annotations

import ast
import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mesh.proxy.balancer import Balancer
from mesh.proxy.connection import Conn, connect
from mesh.proxy.discovery import (
    Add,
    Address,
    Backend,
    Endpoint,
    EndpointSet,
    NoEndpoints,
    NotFound,
    Remove,
    Replace,
    Resolution,
    Split,
    Update,
    labels,
)
from mesh.proxy.exchange import Exchange
from mesh.proxy.pool import ConnectionPool, PoolKey
from mesh.proxy.resolve import Destination, Destinations
from mesh.proxy.tap import TapHub
from mesh.proxy.telemetry import ProxyMetrics
from tests.proxy.proxy_support import LOOPBACK, FakeDiscovery, port_of, start_echo_app

A = Address("10.42.0.1", 8080)
B = Address("10.42.0.2", 8080)
C = Address("10.42.0.3", 8080)

SANS_IO = ["balancer", "detect", "discovery", "exchange", "http1", "metrics", "policy", "tap"]
SANS_IO += ["routes", "telemetry", "tls"]


@pytest.mark.parametrize("module", SANS_IO)
def test_cores_do_no_io(module: str) -> None:
    """The sans-I/O cores never import asyncio or socket (STYLE.md)."""
    path = Path(__file__).parents[2] / "mesh" / "proxy" / f"{module}.py"
    tree = ast.parse(path.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"asyncio", "socket", "selectors"}, imported


def test_endpoint_set_updates() -> None:
    endpoints = EndpointSet()
    assert endpoints.state is Resolution.PENDING
    endpoints.apply(Add((Endpoint(A, labels=labels(pod="a")), Endpoint(B)), labels(service="web")))
    assert endpoints.state is Resolution.ENDPOINTS
    assert dict(endpoints.endpoints[A].labels) == {"pod": "a", "service": "web"}
    endpoints.apply(Add((Endpoint(A, identity="web.demo"),)))
    assert endpoints.endpoints[A].identity == "web.demo"
    endpoints.apply(Remove((A, B)))
    assert endpoints.state is Resolution.NO_ENDPOINTS
    endpoints.apply(Replace((Endpoint(C, weight=2.0),)))
    assert endpoints.weights() == {C: 2.0}
    endpoints.apply(NoEndpoints(exists=False))
    assert endpoints.state is Resolution.NO_ENDPOINTS
    endpoints.apply(NotFound())
    assert endpoints.state is Resolution.NOT_FOUND
    assert endpoints.version == 6


def test_address_parsing() -> None:
    assert Address.parse("10.0.0.1:80") == Address("10.0.0.1", 80)
    assert Address.parse("[fd00::1]:443") == Address("fd00::1", 443)
    assert str(Address("fd00::1", 443)) == "[fd00::1]:443"
    with pytest.raises(ValueError, match="host:port"):
        Address.parse("nope")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_destination_waits_for_endpoints_then_balances_survivors() -> None:
    loop = asyncio.get_running_loop()
    destination = Destination("web:80", Balancer(random.Random(1)), loop.time)
    waiting = asyncio.ensure_future(destination.choose(loop.time() + 5))
    await asyncio.sleep(0)
    destination.apply_update(Add((Endpoint(A), Endpoint(B))))
    choice = await waiting
    assert choice.endpoint is not None
    assert choice.endpoint.address in (A, B)
    destination.apply_update(Remove((A,)))
    for _ in range(20):
        picked = await destination.choose(loop.time() + 1)
        assert picked.endpoint is not None
        assert picked.endpoint.address == B


async def test_destination_failfast_reasons() -> None:
    loop = asyncio.get_running_loop()
    destination = Destination("web:80", Balancer(random.Random(1)), loop.time)
    pending = await destination.choose(loop.time() + 0.01)
    assert pending.failure == "discovery did not answer in time"
    destination.apply_update(NoEndpoints())
    empty = await destination.choose(loop.time() + 0.01)
    assert empty.failure == "service has no endpoints"
    destination.apply_update(NotFound())
    direct = await destination.choose(loop.time() + 0.01)
    assert (direct.endpoint, direct.failure) == (None, None)


class BrokenDiscovery:
    async def resolve(self, target: str) -> AsyncIterator[Update]:
        raise ConnectionError("control plane unreachable")
        yield NotFound()  # pragma: no cover - makes this an async generator


async def test_destinations_fall_back_to_the_original_destination_when_discovery_fails() -> None:
    loop = asyncio.get_running_loop()
    destinations = Destinations(
        BrokenDiscovery(), clock=loop.time, rng=random.Random(0), decay=10.0, default_rtt=0.03
    )
    try:
        choice = await destinations.get("10.43.0.1:80").choose(loop.time() + 2)
        assert (choice.endpoint, choice.failure) == (None, None)
    finally:
        await destinations.close()


async def test_destinations_follow_discovery() -> None:
    loop = asyncio.get_running_loop()
    discovery = FakeDiscovery()
    discovery.push("web:80", Add((Endpoint(A),)))
    destinations = Destinations(
        discovery, clock=loop.time, rng=random.Random(0), decay=10.0, default_rtt=0.03
    )
    try:
        destination = destinations.get("web:80")
        assert destinations.get("web:80") is destination
        choice = await destination.choose(loop.time() + 2)
        assert choice.endpoint == Endpoint(A)
        discovery.push("web:80", Replace((Endpoint(B),)))
        await destination.changed(loop.time() + 2)
        assert set(destination.balancer.keys) == {B}
        assert discovery.resolved == ["web:80"]
    finally:
        await destinations.close()


async def test_split_targets_divide_requests_by_weight() -> None:
    """CONF-39/40: a split sends each request to a backend drawn by weight."""
    loop = asyncio.get_running_loop()
    discovery = FakeDiscovery()
    discovery.push("apex:80", Split((Backend("west:80", 1.0), Backend("east:80", 3.0))))
    discovery.push("west:80", Add((Endpoint(A),)))
    discovery.push("east:80", Add((Endpoint(B),)))
    destinations = Destinations(
        discovery, clock=loop.time, rng=random.Random(5), decay=10.0, default_rtt=0.03
    )
    try:
        apex = destinations.get("apex:80")
        picks = []
        for _ in range(400):
            choice = await destinations.choose(apex, loop.time() + 2)
            assert choice.endpoint is not None
            picks.append(choice.endpoint.address)
        assert 0.65 < picks.count(B) / 400 < 0.85
        discovery.push("apex:80", Split((Backend(None, 1.0),)))
        await apex.changed(loop.time() + 2)
        missing = await destinations.choose(apex, loop.time() + 1)
        assert (missing.status, missing.failure) == (500, "traffic split backend not found")
        discovery.push("apex:80", Split(()))
        discovery.push("apex:80", Add((Endpoint(C),)))
        await apex.changed(loop.time() + 2)
        direct = await destinations.choose(apex, loop.time() + 1)
        assert direct.endpoint == Endpoint(C)
    finally:
        await destinations.close()


async def test_pool_reuses_idle_connections_until_they_expire() -> None:
    app = await start_echo_app()
    clock = Clock()
    opened: list[Conn] = []

    async def connector(key: PoolKey) -> Conn:
        opened.append(await connect(key.address, timeout=1.0))
        return opened[-1]

    pool = ConnectionPool(connector, clock=clock, idle_timeout=10.0, max_idle=1)
    key = PoolKey(Address(LOOPBACK, port_of(app)))
    try:
        first = await pool.acquire(key)
        pool.release(first, reusable=True)
        assert await pool.acquire(key) is first
        second = await pool.acquire(key)
        assert second is not first
        pool.release(first, reusable=True)
        pool.release(second, reusable=True)  # over max_idle: closed
        assert pool.idle_count(key) == 1
        assert second.conn.closing
        clock.now = 11.0
        third = await pool.acquire(key)
        assert third is not first
        assert first.conn.closing
        pool.release(third, reusable=False)
        assert third.conn.closing
        assert pool.opened == 3
    finally:
        await pool.close()
        for conn in opened:
            await conn.aclose()
        app.close()
        await app.wait_closed()


def test_exchange_records_once() -> None:
    metrics = ProxyMetrics()
    stats = metrics.http((("direction", "outbound"),))
    seen: list[tuple[float, bool]] = []
    hub = TapHub()
    sub = hub.subscribe()
    exchange = Exchange(1.0, stats, hub, None, lambda at, ok: seen.append((at, ok)))
    exchange.response_started(200, local=False, now=1.5)
    exchange.finished(200, 10, None, now=2.0)
    exchange.abandon("late", now=3.0)
    assert seen == [(1.5, True)]
    assert exchange.done
    assert len(sub) == 0  # no tap info given: nothing published
    text = metrics.render()
    assert (
        'response_total{direction="outbound",status_code="200",classification="success"} 1' in text
    )
    assert 'response_latency_ms_bucket{direction="outbound",status_code="200",le="1000"} 1' in text


class GatedConnector:
    """Opens real connections to ``app``, each only once the test opens the gate."""

    def __init__(self, app: asyncio.Server) -> None:
        self.app = app
        self.gate = asyncio.Event()
        self.started = 0
        self.opened: list[Conn] = []
        self._changed = asyncio.Event()

    async def __call__(self, key: PoolKey) -> Conn:
        self.started += 1
        self._changed.set()
        await self.gate.wait()
        conn = await connect(key.address, timeout=1.0)
        self.opened.append(conn)
        return conn

    async def until_started(self, count: int) -> None:
        async with asyncio.timeout(5):
            while self.started < count:
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        for conn in self.opened:
            await conn.aclose()
        self.app.close()
        await self.app.wait_closed()


async def gated_pool(
    connect_wait: float = 5.0,
) -> tuple[ConnectionPool, GatedConnector, PoolKey]:
    app = await start_echo_app()
    connector = GatedConnector(app)
    pool = ConnectionPool(
        connector,
        clock=Clock(),
        idle_timeout=10.0,
        max_idle=4,
        max_connecting=1,
        connect_wait=connect_wait,
    )
    return pool, connector, PoolKey(Address(LOOPBACK, port_of(app)))


async def test_connects_to_one_key_are_capped_and_released_connections_go_to_waiters() -> None:
    pool, connector, key = await gated_pool()
    try:
        first = asyncio.ensure_future(pool.acquire(key))
        second = asyncio.ensure_future(pool.acquire(key))
        third = asyncio.ensure_future(pool.acquire(key))
        await connector.until_started(1)
        await asyncio.sleep(0)  # the other two reach the pool (and wait)
        assert connector.started == 1, "only one connect may run at once here"
        connector.gate.set()
        a = await asyncio.wait_for(first, 5)
        # the freed connect slot went to the longest waiter (second), which connects in turn;
        # the connection released meanwhile goes to the next waiter (third), not to idle
        pool.release(a, reusable=True)
        c = await asyncio.wait_for(third, 5)
        b = await asyncio.wait_for(second, 5)
        assert c is a
        assert b is not a
        assert connector.started == 2
        assert pool.idle_count(key) == 0
        assert (a.uses, b.uses) == (2, 1)
        assert pool.opened == 2
    finally:
        await pool.close()
        await connector.close()


async def test_a_waiter_connects_on_its_own_after_the_connect_wait() -> None:
    pool, connector, key = await gated_pool(connect_wait=0.05)
    try:
        stuck = asyncio.ensure_future(pool.acquire(key))
        await connector.until_started(1)
        waiting = asyncio.ensure_future(pool.acquire(key))
        await connector.until_started(2)  # it gave up waiting and connects itself
        connector.gate.set()
        got = await asyncio.wait_for(asyncio.gather(stuck, waiting), 5)
        assert got[0] is not got[1]
        assert pool.opened == 2
    finally:
        await pool.close()
        await connector.close()


async def test_a_connection_handed_to_a_request_that_went_away_stays_in_the_pool() -> None:
    pool, connector, key = await gated_pool()
    try:
        connector.gate.set()
        held = await pool.acquire(key)
        connector.gate.clear()
        slow = asyncio.ensure_future(pool.acquire(key))  # connecting, behind the gate
        await connector.until_started(2)
        gone = asyncio.ensure_future(pool.acquire(key))  # waits
        await asyncio.sleep(0)
        pool.release(held, reusable=True)  # handed to ``gone``...
        gone.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert pool.idle_count(key) == 1, "the handed connection must not be lost"
        connector.gate.set()
        await asyncio.wait_for(slow, 5)
    finally:
        await pool.close()
        await connector.close()
