"""Per-request load balancing: power of two choices over peak-EWMA latency, sans I/O.

The model is Finagle's ``PeakEwma`` as Linkerd's proxy uses it (through tower):

- Each endpoint keeps an RTT estimate, starting at ``default_rtt`` (30 ms). An
  observed RTT above the estimate replaces it (the peak); a lower one is blended
  in with weight ``1 - exp(-elapsed / decay)`` (decay 10 s). Reading the cost
  observes an RTT of zero, so the estimate of an idle endpoint decays towards
  zero and it gets probed again.
- Cost is ``estimate * (pending + 1) / weight``; an endpoint whose estimate has
  decayed to zero but has requests outstanding costs ``PENALTY + pending``.
- ``pick`` draws two distinct ready endpoints with the injected RNG and takes
  the cheaper. An endpoint whose connection failed is unready until a given
  time; when none is ready the answer is ``Wait(until)``; with no endpoints,
  ``Empty``.
- ``set_endpoints`` keeps the state (estimate, pending) of endpoints that stay.

Times are seconds from an injected clock; nothing here reads the clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "DEFAULT_DECAY",
    "DEFAULT_RTT",
    "PENALTY",
    "Balancer",
    "Empty",
    "Lease",
    "Pick",
    "Wait",
]

K = TypeVar("K", bound=Hashable)

DEFAULT_DECAY = 10.0
"""Seconds over which an RTT observation's influence decays (Linkerd's EWMA decay)."""
DEFAULT_RTT = 0.030
"""The RTT estimate of an endpoint with no observations yet (Linkerd's default)."""
PENALTY = float(2**47) / 1e9
"""Finagle's penalty (``Long.MaxValue >> 16`` ns) for outstanding work with a zero estimate."""


class _State:
    __slots__ = ("estimate", "pending", "stamp", "unready_until", "weight")

    def __init__(self, now: float, estimate: float, weight: float) -> None:
        self.estimate = estimate
        self.stamp = now
        self.pending = 0
        self.weight = weight
        self.unready_until = -math.inf

    def observe(self, rtt: float, now: float, decay: float) -> None:
        if rtt > self.estimate:
            self.estimate = rtt
        else:
            elapsed = max(now - self.stamp, 0.0)
            w = math.exp(-elapsed / decay)
            self.estimate = self.estimate * w + rtt * (1.0 - w)
        self.stamp = max(self.stamp, now)

    def cost(self, now: float, decay: float) -> float:
        self.observe(0.0, now, decay)
        if self.estimate == 0.0 and self.pending:
            load = PENALTY + self.pending
        else:
            load = self.estimate * (self.pending + 1)
        return load / self.weight


@dataclass(frozen=True, slots=True)
class Lease(Generic[K]):
    """One request dispatched to ``key``; hand it back to ``finish`` or ``fail``."""

    key: K
    sent_at: float
    state: _State


@dataclass(frozen=True, slots=True)
class Pick(Generic[K]):
    """Send the request to ``lease.key``."""

    lease: Lease[K]


@dataclass(frozen=True, slots=True)
class Wait:
    """Every endpoint is unready; the first becomes ready again at ``until``."""

    until: float


@dataclass(frozen=True, slots=True)
class Empty:
    """There are no endpoints."""


class Balancer(Generic[K]):
    """Chooses an endpoint for each request; see the module docstring for the rules."""

    def __init__(
        self,
        rng: random.Random,
        *,
        decay: float = DEFAULT_DECAY,
        default_rtt: float = DEFAULT_RTT,
    ) -> None:
        if decay <= 0:
            raise ValueError("decay must be positive")
        self._rng = rng
        self._decay = decay
        self._default_rtt = default_rtt
        self._states: dict[K, _State] = {}
        self._keys: list[K] = []

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._states

    @property
    def keys(self) -> tuple[K, ...]:
        """The endpoints, in insertion order."""
        return tuple(self._keys)

    def set_endpoints(self, weights: Mapping[K, float], now: float) -> None:
        """Make the set exactly ``weights``' keys; survivors keep their estimates."""
        states: dict[K, _State] = {}
        for key, weight in weights.items():
            if weight <= 0:
                raise ValueError(f"weight of {key!r} must be positive, got {weight}")
            state = self._states.get(key)
            if state is None:
                state = _State(now, self._default_rtt, weight)
            state.weight = weight
            states[key] = state
        self._states = states
        self._keys = list(states)

    def add(self, key: K, now: float, weight: float = 1.0) -> None:
        """Add one endpoint (or change its weight)."""
        merged = {k: s.weight for k, s in self._states.items()}
        merged[key] = weight
        self.set_endpoints(merged, now)

    def remove(self, key: K) -> None:
        """Drop one endpoint; leases on it may still be finished."""
        if self._states.pop(key, None) is not None:
            self._keys = list(self._states)

    def cost(self, key: K, now: float) -> float:
        """The endpoint's current cost (lower is better)."""
        return self._states[key].cost(now, self._decay)

    def estimate(self, key: K) -> float:
        """The endpoint's RTT estimate as of its last update, in seconds."""
        return self._states[key].estimate

    def pending(self, key: K) -> int:
        """Requests dispatched to the endpoint and not yet finished."""
        return self._states[key].pending

    def pick(self, now: float) -> Pick[K] | Wait | Empty:
        """Choose an endpoint for a request sent at ``now`` (its pending count goes up)."""
        keys = self._keys
        n = len(keys)
        if n == 0:
            return Empty()
        key = self._choose(keys, now)
        if key is None:
            ready = [k for k in keys if self._states[k].unready_until <= now]
            if not ready:
                return Wait(min(s.unready_until for s in self._states.values()))
            key = self._choose(ready, now)
            assert key is not None
        state = self._states[key]
        state.pending += 1
        return Pick(Lease(key, now, state))

    def _choose(self, keys: list[K], now: float) -> K | None:
        """P2C over ``keys``; ``None`` if a drawn endpoint is unready."""
        n = len(keys)
        rng = self._rng
        if n == 1:
            a = keys[0]
            return a if self._states[a].unready_until <= now else None
        i = rng.randrange(n)
        j = rng.randrange(n - 1)
        if j >= i:
            j += 1
        a, b = keys[i], keys[j]
        sa, sb = self._states[a], self._states[b]
        if sa.unready_until > now or sb.unready_until > now:
            return None
        return a if sa.cost(now, self._decay) <= sb.cost(now, self._decay) else b

    def finish(self, lease: Lease[K], now: float) -> None:
        """The response to ``lease`` arrived at ``now``: record its RTT."""
        state = lease.state
        state.pending = max(state.pending - 1, 0)
        state.observe(max(now - lease.sent_at, 0.0), now, self._decay)

    def fail(self, lease: Lease[K], now: float, *, unready_until: float | None = None) -> None:
        """The request on ``lease`` failed; with ``unready_until``, skip the endpoint till then."""
        state = lease.state
        state.pending = max(state.pending - 1, 0)
        if unready_until is not None:
            state.unready_until = max(state.unready_until, unready_until)
        else:
            state.observe(max(now - lease.sent_at, 0.0), now, self._decay)

    def release(self, lease: Lease[K]) -> None:
        """The request on ``lease`` never went out: undo its pending count, record nothing."""
        lease.state.pending = max(lease.state.pending - 1, 0)
