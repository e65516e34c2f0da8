"""Tap events as JSON lines, matching, and bounded subscriptions."""

from __future__ import annotations

import json

from mesh.proxy.discovery import Address
from mesh.proxy.tap import (
    Peer,
    RequestEnd,
    RequestInfo,
    RequestInit,
    ResponseInit,
    TapEvent,
    TapHub,
    TapMatch,
)
from mesh.proxy.telemetry import Direction

SOURCE = Peer(Address("10.42.0.7", 51234), (("tls", "true"), ("client_id", "web.demo")))
DESTINATION = Peer(Address("10.42.0.9", 8080), (("tls", "true"),))


def request(n: int, *, path: str = "/", direction: Direction = Direction.INBOUND) -> RequestInfo:
    return RequestInfo(n, direction, SOURCE, DESTINATION, "GET", "http", "bb:8080", path)


def test_events_render_like_linkerd_tap_json() -> None:
    info = request(3, path="/hello")
    init, response, end = (
        TapEvent(info, RequestInit()),
        TapEvent(info, ResponseInit(403, 0.0015)),
        TapEvent(info, RequestEnd(1.25, 0.5, 17)),
    )
    first = json.loads(init.to_line())
    assert first["proxyDirection"] == "INBOUND"
    assert first["source"] == {"ip": "10.42.0.7", "port": 51234, "metadata": dict(SOURCE.metadata)}
    assert first["requestInitEvent"]["path"] == "/hello"
    assert first["requestInitEvent"]["id"] == {"base": 0, "stream": 3}
    second = json.loads(response.to_line())
    assert second["responseInitEvent"]["httpStatus"] == 403
    assert second["responseInitEvent"]["sinceRequestInit"] == {"seconds": 0, "nanos": 1500000}
    third = json.loads(end.to_line())
    assert third["responseEndEvent"]["responseBytes"] == 17
    assert third["responseEndEvent"]["sinceRequestInit"] == {"seconds": 1, "nanos": 250000000}
    assert init.to_line().endswith("\n")
    assert init.to_line().count("\n") == 1


def test_subscriptions_get_matching_events_only() -> None:
    hub = TapHub()
    assert not hub.active
    wanted = hub.subscribe(TapMatch(path_prefix="/api", direction=Direction.INBOUND))
    everything = hub.subscribe()
    assert hub.active
    hub.publish(TapEvent(request(1, path="/api/x"), RequestInit()))
    hub.publish(TapEvent(request(2, path="/other"), RequestInit()))
    hub.publish(TapEvent(request(3, path="/api/y", direction=Direction.OUTBOUND), RequestInit()))
    assert [e.request.id for e in wanted.drain()] == [1]
    assert [e.request.id for e in everything.drain()] == [1, 2, 3]
    assert wanted.drain() == []


def test_slow_subscribers_drop_and_count() -> None:
    hub = TapHub()
    notified: list[int] = []
    slow = hub.subscribe(capacity=2, notify=lambda: notified.append(1))
    for n in range(5):
        hub.publish(TapEvent(request(n), RequestInit()))
    assert len(slow) == 2
    assert slow.dropped == 3
    assert len(notified) == 2
    hub.unsubscribe(slow)
    assert hub.dropped == 3
    assert not hub.active
    hub.publish(TapEvent(request(9), RequestInit()))
    assert [e.request.id for e in slow.drain()] == [0, 1]
