"""Tap: live request and response events for whoever subscribes, sans I/O.

Rules:
- Each proxied HTTP request yields up to three events: request init, response
  init (with the status), response end (with bytes and latency). Every event
  carries the request's summary so a subscription's ``TapMatch`` judges all
  three alike.
- Events render as JSON lines shaped like ``linkerd viz tap -o json``
  (``requestInitEvent``, ``responseInitEvent.httpStatus``, ``responseEndEvent``).
- A subscription holds at most ``capacity`` events; when its reader is slow,
  new events are dropped and counted, never blocking the proxy.
- ``TapHub.active`` is False without subscribers so callers skip building events.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mesh.proxy.discovery import Address
from mesh.proxy.telemetry import Direction

__all__ = [
    "DEFAULT_CAPACITY",
    "Peer",
    "RequestEnd",
    "RequestInfo",
    "RequestInit",
    "ResponseInit",
    "Subscription",
    "TapEvent",
    "TapHub",
    "TapMatch",
]

DEFAULT_CAPACITY = 1000
"""Events a subscription buffers before dropping."""


@dataclass(frozen=True, slots=True)
class Peer:
    """One end of a tapped request: address and metadata (``tls``, identities, labels)."""

    address: Address
    metadata: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.address.host,
            "port": self.address.port,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The request an event belongs to."""

    id: int
    direction: Direction
    source: Peer
    destination: Peer
    method: str
    scheme: str
    authority: str
    path: str


@dataclass(frozen=True, slots=True)
class RequestInit:
    """The request's headers were received."""


@dataclass(frozen=True, slots=True)
class ResponseInit:
    """The response's headers were sent, ``since_request`` seconds after the request's."""

    status: int
    since_request: float


@dataclass(frozen=True, slots=True)
class RequestEnd:
    """The response ended (``error`` set if it failed midway)."""

    since_request: float
    since_response: float
    response_bytes: int
    error: str | None = None


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": round((seconds - whole) * 1e9)}


@dataclass(frozen=True, slots=True)
class TapEvent:
    """One tap event about ``request``."""

    request: RequestInfo
    event: RequestInit | ResponseInit | RequestEnd

    def to_json(self) -> dict[str, Any]:
        """The event as ``linkerd viz tap -o json`` prints it."""
        r = self.request
        ident = {"base": 0, "stream": r.id}
        body: dict[str, Any] = {
            "source": r.source.to_json(),
            "destination": r.destination.to_json(),
            "routeMeta": None,
            "proxyDirection": r.direction.value.upper(),
        }
        e = self.event
        if isinstance(e, RequestInit):
            body["requestInitEvent"] = {
                "id": ident,
                "method": r.method,
                "scheme": r.scheme,
                "authority": r.authority,
                "path": r.path,
            }
        elif isinstance(e, ResponseInit):
            body["responseInitEvent"] = {
                "id": ident,
                "sinceRequestInit": _duration(e.since_request),
                "httpStatus": e.status,
            }
        else:
            end: dict[str, Any] = {
                "id": ident,
                "sinceRequestInit": _duration(e.since_request),
                "sinceResponseInit": _duration(e.since_response),
                "responseBytes": e.response_bytes,
            }
            if e.error:
                end["error"] = e.error
            body["responseEndEvent"] = end
        return body

    def to_line(self) -> str:
        """One JSON line, newline-terminated."""
        return json.dumps(self.to_json(), separators=(",", ":")) + "\n"


@dataclass(frozen=True, slots=True)
class TapMatch:
    """Which requests a subscription wants; unset fields match anything."""

    direction: Direction | None = None
    authority: str | None = None
    path_prefix: str | None = None
    method: str | None = None

    def matches(self, request: RequestInfo) -> bool:
        """Whether ``request`` passes every set field."""
        return (
            (self.direction is None or request.direction is self.direction)
            and (self.authority is None or request.authority == self.authority)
            and (self.path_prefix is None or request.path.startswith(self.path_prefix))
            and (self.method is None or request.method.upper() == self.method.upper())
        )


@dataclass(eq=False)
class Subscription:
    """A bounded queue of events for one tap client."""

    match: TapMatch
    capacity: int = DEFAULT_CAPACITY
    notify: Callable[[], None] | None = None
    dropped: int = 0
    closed: bool = False
    _events: deque[TapEvent] = field(default_factory=deque)

    def offer(self, event: TapEvent) -> None:
        """Queue ``event`` if it matches and there is room; count it dropped if not."""
        if self.closed or not self.match.matches(event.request):
            return
        if len(self._events) >= self.capacity:
            self.dropped += 1
            return
        self._events.append(event)
        if self.notify is not None:
            self.notify()

    def drain(self) -> list[TapEvent]:
        """Every queued event, oldest first, emptying the queue."""
        events = list(self._events)
        self._events.clear()
        return events

    def __len__(self) -> int:
        return len(self._events)


class TapHub:
    """Fans tap events out to subscriptions."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._ids = itertools.count(1)
        self.dropped = 0
        """Events dropped over all subscriptions that have ended."""

    @property
    def active(self) -> bool:
        """Whether anyone is listening."""
        return bool(self._subscriptions)

    def next_id(self) -> int:
        """A fresh request id."""
        return next(self._ids)

    def subscribe(
        self,
        match: TapMatch | None = None,
        *,
        capacity: int = DEFAULT_CAPACITY,
        notify: Callable[[], None] | None = None,
    ) -> Subscription:
        """Start receiving events matching ``match``."""
        subscription = Subscription(match or TapMatch(), capacity, notify)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop ``subscription``; its queued events stay readable."""
        subscription.closed = True
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self.dropped += subscription.dropped

    def publish(self, event: TapEvent) -> None:
        """Offer ``event`` to every subscription."""
        for subscription in self._subscriptions:
            subscription.offer(event)
