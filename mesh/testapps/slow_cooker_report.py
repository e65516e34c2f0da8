"""slow_cooker's bookkeeping and report lines (pure).

What slow_cooker prints is what its users read and grep, so the lines keep its shape:
a ``# sending ...`` line and a column header, then one line per interval:
``<RFC3339 time> good/bad/failed target goal% interval min [p50 p95 p99 p999] max
bhash change``. Rules, as slow_cooker has them:
- good is a response with status 200-499, bad one of 500+, failed a transport error;
- latencies are whole milliseconds to the first response byte; the quantiles are read
  off a histogram of the interval (p999 is asked as quantile 999, which the histogram
  clamps to its maximum);
- the goal is qps x concurrency x whole seconds of the interval; goal% is capped at 100;
- the change indicator compares this interval's p99 with the mean of the last five
  (a ring that starts as zeros): one ``+``/``-`` per power of ten, at most three.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime

from mesh.testapps.goflags import format_duration

RING_SIZE = 5


def rfc3339(t: datetime) -> str:
    """Go's ``time.RFC3339`` layout (``Z`` for UTC, else ``+hh:mm``)."""
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    offset = t.utcoffset()
    if offset is None or offset.total_seconds() == 0:
        return base + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return f"{base}{sign}{hh:02d}:{mm:02d}"


def value_at_quantile(sorted_values: list[int], quantile: float) -> int:
    """The histogram reading slow_cooker prints (0 when empty; quantile clamped to 100)."""
    if not sorted_values:
        return 0
    q = min(max(quantile, 0.0), 100.0)
    wanted = max(int(q / 100.0 * len(sorted_values) + 0.5), 1)
    return sorted_values[min(wanted, len(sorted_values)) - 1]


def change_indicator(history: list[int], latest: int) -> str:
    mean = sum(history) // len(history) if history else 0
    if not history or (mean == 0 and latest == 0):
        return ""
    if mean == 0:
        return "+"
    if latest == 0:
        return "-"
    diff = int(math.log10(latest) - math.log10(mean))
    diff = max(min(diff, 3), -3)
    return "+" * diff if diff > 0 else "-" * -diff


def header_lines(
    qps: int, concurrency: int, method: str, url: str, interval: float, now: datetime
) -> list[str]:
    time_pad = " " * len(rfc3339(now))
    int_pad = " " * (len(format_duration(interval)) - 2)
    return [
        f"# sending {qps * concurrency} {method} req/s with concurrency={concurrency} to {url} ...",
        f"# {time_pad} good/b/f t   goal% {int_pad} min [p50 p95 p99  p999]  max bhash change",
    ]


@dataclass
class Window:
    """One reporting interval's counts, and the p99 history across intervals."""

    qps: int
    concurrency: int
    interval: float
    good: int = 0
    bad: int = 0
    failed: int = 0
    failed_hash: int = 0
    latencies: list[int] = field(default_factory=list)
    ring: list[int] = field(default_factory=lambda: [0] * RING_SIZE)
    ring_at: int = 0
    all_latencies: list[int] = field(default_factory=list)

    def record(self, status: int | None, latency_ms: int = 0, hash_ok: bool = True) -> None:
        """One outcome: ``status`` None is a transport failure."""
        if status is None:
            self.failed += 1
            return
        if not hash_ok:
            self.failed_hash += 1
        if 200 <= status < 500:
            self.good += 1
        else:
            self.bad += 1
        self.latencies.append(latency_ms)
        self.all_latencies.append(latency_ms)

    @property
    def target(self) -> int:
        return self.qps * self.concurrency * int(self.interval)

    def report(self, now: datetime) -> str:
        """The interval's line; starts the next interval."""
        values = sorted(self.latencies)
        target = self.target
        done = self.good + self.bad
        percent = int(min(done / target * 100, 100)) if target else 100
        p99 = value_at_quantile(values, 99)
        change = change_indicator(self.ring, p99)
        self.ring[self.ring_at] = p99
        self.ring_at = (self.ring_at + 1) % RING_SIZE
        line = (
            f"{rfc3339(now)} {self.good:6d}/{self.bad:1d}/{self.failed:1d} {target:d} "
            f"{percent:3d}% {format_duration(self.interval)} "
            f"{values[0] if values else 0:3d} "
            f"[{value_at_quantile(values, 50):3d} {value_at_quantile(values, 95):3d} "
            f"{p99:3d} {value_at_quantile(values, 999):4d} ] "
            f"{values[-1] if values else 0:4d} {self.failed_hash:6d} {change}"
        )
        self.good = self.bad = self.failed = self.failed_hash = 0
        self.latencies = []
        return line

    def summary(self) -> str:
        """The latency summary printed when slow_cooker stops (JSON, as it prints it)."""
        values = sorted(self.all_latencies)
        quantiles = {f"p{q}": value_at_quantile(values, q) for q in (50, 75, 90, 95, 99, 999)}
        return json.dumps(quantiles, indent=2)
