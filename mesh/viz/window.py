"""Figures over a window from two scrapes: rates, success and latency percentiles, sans I/O.

Rules:
- A counter's increase over the window is ``after - before`` for a series in
  both scrapes; a series only in the later scrape started at zero inside the
  window (the proxy creates series on first use); a counter that went down was
  reset (proxy restart), so its increase is its later value, as Prometheus'
  ``increase`` treats resets.
- Gauges (``tcp_open_connections``) are read from the later scrape.
- RPS divides by the window actually elapsed between the scrapes of each pod,
  not the window asked for.
- SUCCESS counts ``classification="success"`` responses among all; with no
  responses it is unknown (``None``), never 100%.
- Percentiles follow Prometheus' ``histogram_quantile``: linear interpolation
  inside the bucket the rank falls in, the first bucket starting at 0, and the
  highest finite bound when the rank falls in ``+Inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from mesh.viz.scrape import PodScrape, Sample, Workload

__all__ = ["Delta", "Figures", "Window", "histogram_quantile"]

COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


@dataclass(frozen=True, slots=True)
class Delta:
    """One series of one pod over the window: its increase (counters) or value (gauges)."""

    workload: Workload
    sample: Sample
    seconds: float


class Window:
    """The series of every pod scraped twice, ``seconds`` apart (per pod)."""

    def __init__(
        self,
        before: Iterable[PodScrape],
        after: Iterable[PodScrape],
        pods: Iterable[Workload] = (),
    ) -> None:
        """``pods``: every pod in scope, scraped or not (unmeshed ones count in MESHED)."""
        first = {(s.workload.namespace, s.workload.name): s for s in before}
        self.deltas: list[Delta] = []
        known = {(w.namespace, w.name): w for w in pods}
        for later in after:
            known.setdefault((later.workload.namespace, later.workload.name), later.workload)
        self.workloads: list[Workload] = list(known.values())
        for later in after:
            key = (later.workload.namespace, later.workload.name)
            earlier = first.get(key)
            seconds = later.at - earlier.at if earlier is not None else 0.0
            old = {_key(s): s.value for s in earlier.samples} if earlier is not None else {}
            for s in later.samples:
                if s.name.endswith(COUNTER_SUFFIXES):
                    if earlier is None:
                        continue  # no start: the pod's increase is unknown
                    prior = old.get(_key(s), 0.0)
                    value = s.value - prior if s.value >= prior else s.value
                else:
                    value = s.value
                self.deltas.append(Delta(later.workload, Sample(s.name, s.labels, value), seconds))

    def figures(
        self,
        who: Callable[[Workload], bool],
        which: Callable[[Sample], bool],
        *,
        tcp: Callable[[Sample], bool] | None = None,
    ) -> Figures:
        """The figures of the series ``which`` accepts, on the pods ``who`` accepts.

        ``tcp`` picks the connection series (default: the same as ``which``).
        """
        tcp = tcp or which
        fig = Figures()
        seconds: dict[tuple[str, str], float] = {}
        for d in self.deltas:
            if not who(d.workload):
                continue
            s = d.sample
            if s.name == "response_total" and which(s):
                seconds[(d.workload.namespace, d.workload.name)] = d.seconds
                if s.labels.get("classification") == "failure":
                    fig.failure += s.value
                else:
                    fig.success += s.value
            elif s.name == "response_latency_ms_bucket" and which(s):
                le = _bound(s.labels.get("le", "+Inf"))
                fig.buckets[le] = fig.buckets.get(le, 0.0) + s.value
            elif s.name == "tcp_open_connections" and tcp(s):
                fig.tcp_conn = (fig.tcp_conn or 0.0) + s.value
            elif s.name == "tcp_read_bytes_total" and tcp(s):
                seconds.setdefault((d.workload.namespace, d.workload.name), d.seconds)
                fig.read_bytes += s.value
            elif s.name == "tcp_write_bytes_total" and tcp(s):
                seconds.setdefault((d.workload.namespace, d.workload.name), d.seconds)
                fig.write_bytes += s.value
        fig.seconds = max(seconds.values(), default=0.0)
        return fig

    def rate(
        self, who: Callable[[Workload], bool], name: str, which: Callable[[Sample], bool]
    ) -> float | None:
        """Per-second increase of counter ``name`` over the matching series (None: no window)."""
        total, seconds = 0.0, 0.0
        for d in self.deltas:
            if d.sample.name == name and who(d.workload) and which(d.sample):
                total += d.sample.value
                seconds = max(seconds, d.seconds)
        return total / seconds if seconds > 0 else None


def _bound(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return math.inf


@dataclass
class Figures:
    """Requests and connections of one row over the window."""

    success: float = 0.0
    failure: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative latency bucket counts (ms bound to count), summed over series."""
    tcp_conn: float | None = None
    read_bytes: float = 0.0
    write_bytes: float = 0.0
    seconds: float = 0.0

    @property
    def requests(self) -> float:
        return self.success + self.failure

    @property
    def rps(self) -> float | None:
        return self.requests / self.seconds if self.seconds > 0 else None

    @property
    def success_rate(self) -> float | None:
        return self.success / self.requests if self.requests > 0 else None

    def latency(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets) if self.requests > 0 else None

    def byte_rates(self) -> tuple[float | None, float | None]:
        if self.seconds <= 0:
            return None, None
        return self.read_bytes / self.seconds, self.write_bytes / self.seconds


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile (0..1) of cumulative ``buckets``; ``None`` when they are empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return None
    total = buckets[math.inf]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                finite = [b for b in bounds if b != math.inf]
                return finite[-1] if finite else None
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return None
