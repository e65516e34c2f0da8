"""The failover controller's admin port: ``/metrics``, ``/ready`` and ``/live``.

Rules: one registry per controller (tests run several side by side). Metrics:
- ``failover_trafficsplit_primary_active{namespace,trafficsplit}`` 1 while the split's
  weight is on its primary, 0 while it is on secondaries or nowhere;
- ``failover_backend_weight{namespace,trafficsplit,service}`` each backend's weight as
  last seen or written;
- ``failover_shifts_total{namespace,trafficsplit,to}`` weight moves written, ``to`` being
  ``primary`` or ``secondaries``;
- ``failover_patches_total{outcome}`` patches by outcome (``ok``, ``conflict``, ``error``);
- ``failover_patch_latency_ms`` from the watch event that called for a shift to the
  patch being accepted.
``/ready`` is 200 once the splits and the Endpoints have been listed, 503 before;
``/live`` is 200 while the process serves.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from mesh.failover.core import State
from mesh.failover.model import Split
from mesh.k8s.objects import ObjectKey

__all__ = ["FailoverMetrics"]

_LATENCY_BUCKETS_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class FailoverMetrics:
    """The controller's Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.primary_active = Gauge(
            "failover_trafficsplit_primary_active",
            "1 while the split's weight is on its primary service",
            ["namespace", "trafficsplit"],
            registry=self.registry,
        )
        self.weight = Gauge(
            "failover_backend_weight",
            "A backend's weight as last seen or written",
            ["namespace", "trafficsplit", "service"],
            registry=self.registry,
        )
        self.shifts = Counter(
            "failover_shifts",
            "Weight moves written, to the primary or to the secondaries",
            ["namespace", "trafficsplit", "to"],
            registry=self.registry,
        )
        self.patches = Counter(
            "failover_patches",
            "TrafficSplit weight patches by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.patch_latency = Histogram(
            "failover_patch_latency_ms",
            "From the watch event calling for a shift to the patch being accepted, in ms",
            buckets=_LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self._services: dict[ObjectKey, tuple[str, ...]] = {}

    def observe(self, split: Split, state: State) -> None:
        labels = (split.namespace, split.name)
        self.primary_active.labels(*labels).set(1 if state is State.PRIMARY else 0)
        services = tuple(b.service for b in split.backends)
        for stale in set(self._services.get(split.key, ())) - set(services):
            self.weight.remove(*labels, stale)
        self._services[split.key] = services
        for backend in split.backends:
            self.weight.labels(*labels, backend.service).set(float(backend.weight))

    def forget(self, key: ObjectKey) -> None:
        labels = (key.namespace, key.name)
        for service in self._services.pop(key, ()):
            with contextlib.suppress(KeyError):
                self.weight.remove(*labels, service)
        with contextlib.suppress(KeyError):
            self.primary_active.remove(*labels)
        for to in ("primary", "secondaries"):
            with contextlib.suppress(KeyError):
                self.shifts.remove(*labels, to)

    def patched(self, split: Split, weights: tuple[int, ...], state: State, ms: float) -> None:
        self.patches.labels("ok").inc()
        self.patch_latency.observe(ms)
        to = "primary" if state is State.PRIMARY else "secondaries"
        self.shifts.labels(split.namespace, split.name, to).inc()
        for backend, weight in zip(split.backends, weights, strict=True):
            self.weight.labels(split.namespace, split.name, backend.service).set(weight)

    def failed(self, conflict: bool) -> None:
        self.patches.labels("conflict" if conflict else "error").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
