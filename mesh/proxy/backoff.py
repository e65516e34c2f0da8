"""Retry delays for the control-plane clients, sans I/O.

``Backoff`` gives exponentially growing delays with full jitter, capped, and
starts over after ``reset`` (a stream that delivered something). The RNG is
injected so tests can pin the delays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffSettings"]


@dataclass(frozen=True)
class BackoffSettings:
    """How retries are spaced, in seconds."""

    initial: float = 0.1
    """The first delay's upper bound."""
    maximum: float = 10.0
    """No delay is longer than this."""
    factor: float = 2.0
    """Each failure multiplies the bound by this."""
    jitter: float = 0.5
    """The fraction of each delay that is random (0: none, 1: anywhere in [0, bound])."""

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {self.initial}, {self.maximum}")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"need factor >= 1 and 0 <= jitter <= 1, got {self}")


class Backoff:
    """Successive retry delays; ``reset`` after a success."""

    def __init__(self, settings: BackoffSettings, rng: random.Random) -> None:
        self.settings = settings
        self._rng = rng
        self._bound = settings.initial
        self.failures = 0
        """Consecutive failures since the last reset."""

    def next(self) -> float:
        """The delay before the next attempt; grows on each call."""
        s = self.settings
        bound = self._bound
        self._bound = min(s.maximum, bound * s.factor)
        self.failures += 1
        return bound * (1 - s.jitter) + bound * s.jitter * self._rng.random()

    def reset(self) -> None:
        """Start over from the shortest delay."""
        self._bound = self.settings.initial
        self.failures = 0
