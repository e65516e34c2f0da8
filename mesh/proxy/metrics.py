"""A small, fast metrics registry rendering Prometheus text exposition format.

Rules:
- A series is a family plus a label tuple ``((name, value), ...)`` in a fixed
  order; callers build label tuples once (per connection, per target) and reuse
  them, so recording is a dict update and, for histograms, one bisection.
- Label values are escaped (backslash, double quote, newline) when rendered;
  the rendered label text of each tuple is cached.
- Hot paths keep the ``Cell`` or ``Series`` of a label set and record into it
  directly, with no lookup at all.
- Histograms store per-bucket counts and cumulate only when rendered.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable

__all__ = [
    "LATENCY_BUCKETS_MS",
    "Cell",
    "Counter",
    "Gauge",
    "Histogram",
    "Labels",
    "Registry",
    "Series",
    "escape",
    "format_labels",
]

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500,
    1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000,
)  # fmt: skip
"""Linkerd's ``response_latency_ms`` buckets (an ``+Inf`` bucket is implied)."""


def escape(value: str) -> str:
    """A label value escaped for the text format."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


_label_text: dict[Labels, str] = {}


def format_labels(labels: Labels) -> str:
    """``{a="1",b="2"}`` for ``labels`` (empty string for none), cached."""
    text = _label_text.get(labels)
    if text is None:
        text = "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels) + "}" if labels else ""
        if len(_label_text) < 100_000:
            _label_text[labels] = text
    return text


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


class _Family:
    kind = ""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:
        raise NotImplementedError


class Cell:
    """One series' value; hold on to it to record without looking labels up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class Counter(_Family):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self.cells: dict[Labels, Cell] = {}

    def cell(self, labels: Labels) -> Cell:
        """The series of ``labels`` (created at zero)."""
        cell = self.cells.get(labels)
        if cell is None:
            cell = self.cells[labels] = Cell()
        return cell

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        """Add ``amount`` to the series of ``labels``."""
        self.cell(labels).value += amount

    def get(self, labels: Labels) -> float:
        """The series' value (0 if never incremented)."""
        cell = self.cells.get(labels)
        return cell.value if cell else 0.0

    def samples(self) -> Iterable[str]:
        for labels, cell in self.cells.items():
            yield f"{self.name}{format_labels(labels)} {_number(cell.value)}"


class Gauge(Counter):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def dec(self, labels: Labels, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self.cell(labels).value -= amount

    def set(self, labels: Labels, value: float) -> None:
        """Set the series to ``value``."""
        self.cell(labels).value = value


class Series:
    """One histogram series; hold on to it to record without looking labels up."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation of ``value``."""
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value


class Histogram(_Family):
    """Observations counted into fixed buckets per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        super().__init__(name, help_text)
        self.bounds = tuple(sorted(buckets))
        self.series: dict[Labels, Series] = {}

    def series_for(self, labels: Labels) -> Series:
        """The series of ``labels`` (created empty)."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = Series(self.bounds)
        return series

    def observe(self, labels: Labels, value: float) -> None:
        """Count one observation of ``value``."""
        self.series_for(labels).observe(value)

    def count(self, labels: Labels) -> int:
        """How many observations the series has."""
        series = self.series.get(labels)
        return series.count if series else 0

    def samples(self) -> Iterable[str]:
        for labels, series in self.series.items():
            running = 0
            for bound, n in zip((*self.bounds, math.inf), series.buckets, strict=True):
                running += n
                le = format_labels((*labels, ("le", _number(bound))))
                yield f"{self.name}_bucket{le} {running}"
            text = format_labels(labels)
            yield f"{self.name}_sum{text} {_number(series.sum)}"
            yield f"{self.name}_count{text} {series.count}"


class Registry:
    """The families a process exports, rendered in registration order."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def _register(self, family: _Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} registered twice")
        self._families[family.name] = family

    def counter(self, name: str, help_text: str) -> Counter:
        """Register and return a counter."""
        family = Counter(name, help_text)
        self._register(family)
        return family

    def gauge(self, name: str, help_text: str) -> Gauge:
        """Register and return a gauge."""
        family = Gauge(name, help_text)
        self._register(family)
        return family

    def histogram(self, name: str, help_text: str, buckets: Iterable[float]) -> Histogram:
        """Register and return a histogram."""
        family = Histogram(name, help_text, buckets)
        self._register(family)
        return family

    def render(self) -> str:
        """Every family in the Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        for family in self._families.values():
            lines.extend(family.header())
            lines.extend(family.samples())
        return "\n".join(lines) + "\n"
