"""Whether the target's gateway is alive, from the outcomes of its probes (CONF-10).

Rules: only an HTTP 200 is a success. Before the first probe the gateway counts as
alive (mirrors are usable at once); ``failure_threshold`` consecutive failures make it
dead, and one success makes it alive again. ``observe`` says when the state is worth
publishing: on the first outcome and whenever it changed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Liveness", "ProbeOutcome"]


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
