"""Whether the target's gateway is alive, from the outcomes of its probes (CONF-10).

Rules: only an HTTP 200 is a success. Before the first probe the gateway counts as
alive (mirrors are usable at once); ``failure_threshold`` consecutive failures make it
dead, and one success makes it alive again. ``observe`` says when the state is worth
publishing: on the first outcome and whenever it changed. ``GatewaySet`` keeps one
``Liveness`` per gateway address: every address is probed, a dead one is moved to
notReadyAddresses alone, and the gateway is alive while any address is.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GatewaySet", "Liveness", "ProbeOutcome"]


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe: the HTTP status (``None`` when no response) and how long it took."""

    status: int | None
    latency_ms: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    def describe(self) -> str:
        if self.ok:
            return f"200 in {self.latency_ms:.0f}ms"
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error or "no response"


class Liveness:
    """Consecutive-failure counting over probe outcomes."""

    def __init__(self, failure_threshold: int) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure threshold must be >= 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.alive = True
        self.probed = False
        self.failures = 0

    def observe(self, outcome: ProbeOutcome) -> bool:
        """Record ``outcome``; ``True`` on the first one or when the gateway changed state."""
        first = not self.probed
        self.probed = True
        if outcome.ok:
            self.failures = 0
            changed = not self.alive
            self.alive = True
            return changed or first
        self.failures += 1
        if self.alive and self.failures >= self.failure_threshold:
            self.alive = False
            return True
        return first


class GatewaySet:
    """One ``Liveness`` per gateway address (an outcome without an address counts for all)."""

    def __init__(self, failure_threshold: int, addresses: tuple[str, ...]) -> None:
        self.failure_threshold = failure_threshold
        self.by_address = {a: Liveness(failure_threshold) for a in dict.fromkeys(addresses)}

    def retarget(self, addresses: tuple[str, ...]) -> None:
        """Keep the state of addresses still listed; new ones start alive."""
        self.by_address = {
            a: self.by_address.get(a) or Liveness(self.failure_threshold)
            for a in dict.fromkeys(addresses)
        }

    @property
    def probed(self) -> bool:
        return any(lv.probed for lv in self.by_address.values())

    @property
    def alive(self) -> bool:
        """Alive while any address is (and before any probe)."""
        return not self.by_address or any(lv.alive for lv in self.by_address.values())

    @property
    def dead(self) -> frozenset[str]:
        return frozenset(a for a, lv in self.by_address.items() if not lv.alive)

    @property
    def failures(self) -> int:
        return min((lv.failures for lv in self.by_address.values()), default=0)

    def observe(self, outcome: ProbeOutcome, address: str = "") -> bool:
        """Record ``outcome`` for ``address`` (all when ``""``); whether any address flipped."""
        targets = [self.by_address[address]] if address in self.by_address else []
        if not address:
            targets = list(self.by_address.values())
        before = [lv.alive for lv in targets]
        for lv in targets:
            lv.observe(outcome)
        return before != [lv.alive for lv in targets]
