"""Prometheus text exposition, read for assertions: samples filtered and summed by label.

    m = Metrics.parse(adapter.metrics(kube, ns, pod))
    m.sum("request_total", direction="inbound", tls="true")
    m.label_values("request_total", "client_id", direction="inbound")

Samples are matched by their exposed name (``request_total``, ``response_latency_ms_bucket``),
not their family; a label filter matches samples carrying every given label with that
value. Parsing is ``prometheus_client``'s, so malformed text fails loudly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Metrics", "Sample"]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return self.name == name and all(self.labels.get(k) == v for k, v in labels.items())


class Metrics:
    """The samples of one scrape."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    @classmethod
    def parse(cls, text: str) -> Metrics:
        """Parse exposition text; ``ValueError`` naming the problem if it is malformed."""
        try:
            families = list(text_string_to_metric_families(text))
        except Exception as e:  # the parser raises ValueError, IndexError, ...
            raise ValueError(f"not Prometheus text exposition: {e}") from e
        return cls(
            Sample(s.name, dict(s.labels), float(s.value)) for f in families for s in f.samples
        )

    def select(self, metric: str, **labels: str) -> list[Sample]:
        """The samples named ``metric`` carrying every label given."""
        return [s for s in self.samples if s.matches(metric, labels)]

    def sum(self, metric: str, **labels: str) -> float:
        """The sum of the matching samples (0 when none match)."""
        return sum(s.value for s in self.select(metric, **labels))

    def label_values(self, metric: str, label: str, **labels: str) -> set[str]:
        """The values ``label`` takes over the matching samples that carry it."""
        return {s.labels[label] for s in self.select(metric, **labels) if label in s.labels}

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def describe(self, metric: str, **labels: str) -> str:
        """The matching series as text, for assertion messages."""
        rows = [
            f"{s.name}{{{','.join(f'{k}={v!r}' for k, v in sorted(s.labels.items()))}}} {s.value:g}"
            for s in self.select(metric, **labels)
        ]
        return "; ".join(rows) if rows else f"no {metric} series matching {labels}"
