"""Outbound destinations: one discovery watch per target, its endpoints and balancer.

The first connection to a target starts a watch that applies discovery's
updates to an ``EndpointSet`` and the target's ``Balancer`` (survivors keep
their latency estimates). Waiters are woken on every change. A watch that
fails is retried after ``RETRY_DELAY``; if discovery fails before saying
anything, the target is treated as not found (forwarded to the original
destination), as Linkerd falls back to endpoint forwarding. A split target
sends each request (or TCP connection) to one of its backends, drawn by weight
with the injected RNG, and each backend is a target with its own watch. A
target with HTTP routes picks the backends by the first route the request
matches (none: 404; a route whose backends all have weight 0: 500); a TCP
connection to it takes the catch-all route, or the target's own endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable

from mesh.proxy.balancer import Balancer, Lease, Pick, Wait
from mesh.proxy.discovery import (
    Address,
    Backend,
    Discovery,
    Endpoint,
    EndpointSet,
    NotFound,
    Resolution,
    Update,
)
from mesh.proxy.routes import Request, Route, catch_all, select

__all__ = ["RETRY_DELAY", "Choice", "Destination", "Destinations"]

log = logging.getLogger(__name__)

RETRY_DELAY = 1.0
"""Seconds before a failed discovery watch is restarted."""
MAX_SPLIT_DEPTH = 4
"""How many traffic splits a request may pass through (a split backend may itself be split)."""


class Destination:
    """What is known about one target, kept current by its watch."""

    def __init__(
        self, target: str, balancer: Balancer[Address], clock: Callable[[], float]
    ) -> None:
        self.target = target
        self.endpoints = EndpointSet()
        self.balancer = balancer
        self._clock = clock
        self._changed = asyncio.Event()

    def apply_update(self, update: Update) -> None:
        """Apply one discovery update and wake waiters."""
        self.endpoints.apply(update)
        self.balancer.set_endpoints(self.endpoints.weights(), self._clock())
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, deadline: float) -> bool:
        """Wait for the next update until ``deadline`` (clock time); False on timeout."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            return False
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await event.wait()
                return True
        return False

    def _attempt(self, routed: bool) -> Choice | float:
        """The choice if one can be made now, else until when to wait (``inf``: an update)."""
        if self.endpoints.split:
            return Choice(None, None, split=self.endpoints.split)
        if self.endpoints.routes:
            routes = self.endpoints.routes
            if routed:
                return Choice(None, None, routes=routes)
            route = catch_all(routes)
            if route is not None:
                if route.backends:
                    return Choice(None, None, split=route.backends)
                return Choice(None, None, "traffic split has no backend with weight", status=500)
        state = self.endpoints.state
        if state is Resolution.NOT_FOUND:
            return Choice(None, None)
        if state is Resolution.ENDPOINTS:
            picked = self.balancer.pick(self._clock())
            if isinstance(picked, Pick):
                endpoint = self.endpoints.endpoints.get(picked.lease.key)
                if endpoint is not None:
                    return Choice(endpoint, picked.lease, balancer=self.balancer)
                self.balancer.release(picked.lease)
            elif isinstance(picked, Wait):
                return picked.until
        return math.inf

    def choose_now(self, *, routed: bool = False) -> Choice | None:
        """What ``choose`` answers when it need not wait; ``None`` when it would."""
        attempt = self._attempt(routed)
        return attempt if isinstance(attempt, Choice) else None

    async def choose(self, deadline: float, *, routed: bool = False) -> Choice:
        """An endpoint for one request, waiting (until ``deadline``) for one to be usable.

        ``routed``: the caller has an HTTP request, so HTTP routes apply."""
        while True:
            attempt = self._attempt(routed)
            if isinstance(attempt, Choice):
                return attempt
            if attempt != math.inf:  # every endpoint is busy or backing off until then
                if self._clock() >= deadline:
                    return Choice(None, None, "endpoints unavailable")
                await self.changed(min(attempt, deadline))
                continue
            if not await self.changed(deadline):
                reason = {
                    Resolution.PENDING: "discovery did not answer in time",
                    Resolution.NO_ENDPOINTS: "service has no endpoints",
                }.get(self.endpoints.state, "endpoints unavailable")
                return Choice(None, None, reason)


class Choice:
    """The outcome of ``Destination.choose``."""

    __slots__ = ("balancer", "endpoint", "failure", "lease", "routes", "split", "status")

    def __init__(
        self,
        endpoint: Endpoint | None,
        lease: Lease[Address] | None,
        failure: str | None = None,
        *,
        status: int = 503,
        split: tuple[Backend, ...] = (),
        routes: tuple[Route, ...] = (),
        balancer: Balancer[Address] | None = None,
    ) -> None:
        self.routes = routes
        """The target has HTTP routes: match the request to one and choose among its backends."""
        self.balancer = balancer
        """The balancer ``lease`` belongs to."""
        self.endpoint = endpoint
        """The endpoint to use; ``None`` with no failure: forward to the original destination."""
        self.status = status
        """The HTTP status answering a failure."""
        self.split = split
        """The target is split: choose a backend and ask its destination."""
        self.lease = lease
        self.failure = failure
        """Why no endpoint could be had (a 503 for HTTP, a closed connection for TCP)."""


_TOO_DEEP = Choice(None, None, "traffic splits nested too deeply", status=500)


class Destinations:
    """The destinations the outbound proxy has been asked for, each with its watch."""

    def __init__(
        self,
        discovery: Discovery,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        decay: float,
        default_rtt: float,
    ) -> None:
        self._discovery = discovery
        self._clock = clock
        self._rng = rng
        self._decay = decay
        self._default_rtt = default_rtt
        self._destinations: dict[str, Destination] = {}
        self._watches: set[asyncio.Task[None]] = set()

    def get(self, target: str) -> Destination:
        """The destination for ``target`` (``host:port``), starting its watch if new."""
        destination = self._destinations.get(target)
        if destination is None:
            balancer: Balancer[Address] = Balancer(
                random.Random(self._rng.getrandbits(64)),
                decay=self._decay,
                default_rtt=self._default_rtt,
            )
            destination = Destination(target, balancer, self._clock)
            self._destinations[target] = destination
            task = asyncio.get_running_loop().create_task(self._watch(destination))
            self._watches.add(task)
            task.add_done_callback(self._watches.discard)
        return destination

    async def choose(
        self, destination: Destination, deadline: float, request: Request | None = None
    ) -> Choice:
        """An endpoint of ``destination``, following its traffic split to a backend by weight;
        HTTP routes are matched against ``request`` (``None``: a TCP connection)."""
        for _ in range(MAX_SPLIT_DEPTH):
            choice = await destination.choose(deadline, routed=request is not None)
            step = self._follow(choice, request)
            if isinstance(step, Choice):
                return step
            destination = step
        return _TOO_DEEP

    def choose_now(self, destination: Destination, request: Request | None) -> Choice | None:
        """What ``choose`` answers when nothing needs waiting for; ``None`` otherwise.

        ``None`` leaves no lease behind (a split may have drawn a backend)."""
        for _ in range(MAX_SPLIT_DEPTH):
            choice = destination.choose_now(routed=request is not None)
            if choice is None:
                return None
            step = self._follow(choice, request)
            if isinstance(step, Choice):
                return step
            destination = step
        return _TOO_DEEP

    def _follow(self, choice: Choice, request: Request | None) -> Choice | Destination:
        """``choice`` if it is final, else the split or route backend to ask next."""
        backends = choice.split
        if choice.routes and request is not None:
            route = select(choice.routes, request)
            if route is None:
                return Choice(None, None, "no HTTP route matches the request", status=404)
            if not route.backends:
                return Choice(None, None, "HTTP route has no backend with weight", status=500)
            backends = route.backends
        if not backends:
            return choice
        backend = self._backend(backends)
        if backend.target is None:
            return Choice(None, None, "traffic split backend not found", status=500)
        return self.get(backend.target)

    def _backend(self, backends: tuple[Backend, ...]) -> Backend:
        total = sum(b.weight for b in backends)
        point = self._rng.random() * total
        for backend in backends:
            point -= backend.weight
            if point < 0:
                return backend
        return backends[-1]

    async def _watch(self, destination: Destination) -> None:
        while True:
            try:
                updates = self._discovery.resolve(destination.target)
                try:
                    async for update in updates:
                        destination.apply_update(update)
                finally:
                    aclose = getattr(updates, "aclose", None)
                    if aclose is not None:
                        await aclose()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a broken control plane must not break the proxy
                log.warning("discovery of %s failed: %s", destination.target, e)
                if destination.endpoints.state is Resolution.PENDING:
                    destination.apply_update(NotFound())
            await asyncio.sleep(RETRY_DELAY)

    async def close(self) -> None:
        """Stop every watch."""
        for task in list(self._watches):
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        self._destinations.clear()
