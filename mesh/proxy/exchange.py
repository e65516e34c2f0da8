"""What one proxied HTTP request leaves behind: metrics, tap events, a balancer observation.

Sans I/O: the driver reports the request's milestones with the time ``now``;
an ``Exchange`` turns them into ``request_total`` / ``response_total`` /
``response_latency_ms``, tap events (only when someone is tapping) and, for a
balanced request, the RTT (to the response head) that feeds peak-EWMA.
Every milestone is recorded at most once, whatever order failures come in.
"""

from __future__ import annotations

from collections.abc import Callable

from mesh.proxy.tap import RequestEnd, RequestInfo, RequestInit, ResponseInit, TapEvent, TapHub
from mesh.proxy.telemetry import HttpStats

__all__ = ["Exchange"]


class Exchange:
    """The record of one request, from its head to the end of its response."""

    __slots__ = (
        "_done",
        "_on_response",
        "_responded_at",
        "_stats",
        "_status",
        "_tap",
        "_tap_info",
        "started",
    )

    def __init__(
        self,
        started: float,
        stats: HttpStats,
        tap: TapHub,
        tap_info: Callable[[], RequestInfo] | None = None,
        on_response: Callable[[float, bool], None] | None = None,
    ) -> None:
        """Count the request; ``on_response(now, ok)`` hears when its response head came."""
        self.started = started
        self._stats = stats
        self._tap = tap
        self._tap_info: RequestInfo | None = None
        self._on_response = on_response
        self._responded_at: float | None = None
        self._status: int | None = None
        self._done = False
        stats.request()
        if tap.active and tap_info is not None:
            self._tap_info = tap_info()
            tap.publish(TapEvent(self._tap_info, RequestInit()))

    @property
    def done(self) -> bool:
        """Whether the exchange has been fully recorded."""
        return self._done

    def response_started(self, status: int, *, local: bool, now: float) -> None:
        """The response head went downstream (``local``: the proxy made it)."""
        if self._responded_at is not None:
            return
        self._responded_at = now
        self._status = status
        self._notify(now, ok=not local)
        if self._tap_info is not None and self._tap.active:
            self._tap.publish(TapEvent(self._tap_info, ResponseInit(status, now - self.started)))

    def finished(
        self, status: int | None, body_bytes: int, error: str | None, *, now: float
    ) -> None:
        """The response ended (or never came: ``status`` None), ``error`` if cut short."""
        if self._done:
            return
        self._done = True
        self._notify(now, ok=False)
        status = status if status is not None else self._status
        self._stats.response(status, now - self.started, error)
        if self._tap_info is not None and self._tap.active:
            responded = self._responded_at if self._responded_at is not None else now
            end = RequestEnd(now - self.started, now - responded, body_bytes, error)
            self._tap.publish(TapEvent(self._tap_info, end))

    def abandon(self, error: str, *, now: float) -> None:
        """The connection went away before the exchange ended."""
        self.finished(None, 0, error, now=now)

    def _notify(self, now: float, *, ok: bool) -> None:
        callback, self._on_response = self._on_response, None
        if callback is not None:
            callback(now, ok)
