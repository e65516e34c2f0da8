"""What one scrape of one proxy is: the pod it belongs to and its samples, sans I/O.

Rules:
- Text is Prometheus exposition parsed by ``prometheus_client``; malformed text
  raises ``ValueError`` naming the pod, never yields half a scrape.
- Samples keep their exposed name (``response_latency_ms_bucket``) and labels.
- A ``Workload`` is a pod as viz sees it: namespace, name, its owners by kind
  (``deployment``, ``replicaset``, ``statefulset``, ...), its service account and
  the identity its proxy holds (``None`` when unmeshed).
- When the figures come from Prometheus, each sample's own ``namespace``/``pod``
  labels say which workload it belongs to; ``split_by_pod`` does that grouping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["PodScrape", "Sample", "Workload", "parse_samples", "split_by_pod"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One exposed sample."""

    name: str
    labels: Mapping[str, str]
    value: float

    def get(self, label: str, default: str = "") -> str:
        return self.labels.get(label, default)


@dataclass(frozen=True, slots=True)
class Workload:
    """A pod and what it belongs to."""

    namespace: str
    name: str
    owners: Mapping[str, str] = field(default_factory=dict)
    """Owner kind (lower case, e.g. ``deployment``) to name."""
    service_account: str = "default"
    identity: str | None = None
    """The identity the pod's proxy holds; ``None``: the pod is not meshed."""
    cluster: str = ""
    """The cluster this pod runs in, when known."""

    @property
    def meshed(self) -> bool:
        return self.identity is not None

    def owner(self, kind: str) -> str | None:
        """The name of this pod's ``kind`` (``pod``: itself; ``namespace``: its namespace)."""
        if kind == "pod":
            return self.name
        if kind == "namespace":
            return self.namespace
        return self.owners.get(kind)


@dataclass(frozen=True, slots=True)
class PodScrape:
    """The samples of one proxy at one moment (``at``: seconds, any monotonic origin)."""

    workload: Workload
    at: float
    samples: tuple[Sample, ...]

    def select(self, name: str, **labels: str) -> Iterable[Sample]:
        """The samples named ``name`` that carry every label given."""
        for s in self.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                yield s


def parse_samples(text: str, where: str = "") -> tuple[Sample, ...]:
    """Every sample of exposition ``text``; ``ValueError`` saying ``where`` it came from."""
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError, IndexError, KeyError...
        place = f" from {where}" if where else ""
        raise ValueError(f"metrics{place} are not Prometheus text exposition: {e}") from e
    return tuple(
        Sample(s.name, dict(s.labels), float(s.value)) for f in families for s in f.samples
    )


def split_by_pod(samples: Iterable[Sample]) -> dict[tuple[str, str], list[Sample]]:
    """Samples grouped by their ``namespace`` and ``pod`` labels (Prometheus' target labels)."""
    grouped: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        ns, pod = s.labels.get("namespace"), s.labels.get("pod")
        if ns and pod:
            grouped.setdefault((ns, pod), []).append(s)
    return grouped
