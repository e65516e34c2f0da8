"""The failover decision, sans-IO: watch events in, weight patches and Events out.

Rules (linkerd-failover's behaviour, CONF-49):
- While the primary Service has a ready endpoint, it gets weight 1 and every other
  backend 0.
- While it has none, every other backend with a ready endpoint gets weight 1 (the
  weight is shared equally) and the rest 0, the primary included.
- While no backend is ready the weights are left as they are (a split of total weight
  0 routes nowhere, and the last known split is the best guess), with a Warning Event.
- A primary that is not one of the backends is reported (Warning) and nothing changes.
- Only ``spec.backends[].weight`` is ever written, by a JSON Patch that first tests the
  split's resourceVersion and each backend's service, so a split edited meanwhile is
  never overwritten: the patch fails and the edit's watch event is decided afresh.
- Nothing is decided before both the splits and the Endpoints have been listed.
- One patch per (resourceVersion, weights) at a time; a failed patch is retried on the
  next event or ``Resync``.

Readiness is a Service's Endpoints having any ready address: local Services from
their pods' readiness, gateway-mode mirrors from the gateway (the mirror controller
moves the gateway's address to not-ready when its probe fails). A Service without
Endpoints (or a remote-discovery mirror, which has none) counts as not ready.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mesh.failover.model import Split
from mesh.k8s.objects import ObjectKey

__all__ = [
    "REASONS",
    "Command",
    "Decision",
    "EndpointsChanged",
    "EndpointsListed",
    "EndpointsRemoved",
    "FailoverCore",
    "Forget",
    "Input",
    "Observe",
    "Patch",
    "PatchDone",
    "RecordEvent",
    "Resync",
    "SplitChanged",
    "SplitRemoved",
    "SplitsListed",
    "State",
    "decide",
]


class State(enum.Enum):
    """Which backends a managed split sends traffic to."""

    PRIMARY = "primary"
    SECONDARIES = "secondaries"
    NO_READY_BACKEND = "no-ready-backend"
    INVALID = "invalid"


@dataclass(frozen=True)
class Decision:
    """What a split should be: its state, the weights to write (None: leave), and why."""

    state: State
    weights: tuple[int, ...] | None
    active: tuple[str, ...]
    message: str


def decide(split: Split, ready: Callable[[str], bool]) -> Decision:
    """The weights ``split`` should have given which Services are ``ready`` (by name)."""
    primary = split.primary
    services = [b.service for b in split.backends]
    if primary not in services:
        return Decision(
            State.INVALID,
            None,
            (),
            f"primary service {primary!r} is not a backend of the split (backends: "
            f"{', '.join(services)}); weights left unchanged",
        )
    if ready(primary):
        weights = tuple(1 if s == primary else 0 for s in services)
        return Decision(
            State.PRIMARY, weights, (primary,), f"primary {primary} has ready endpoints"
        )
    secondaries = tuple(dict.fromkeys(s for s in services if s != primary and ready(s)))
    if not secondaries:
        return Decision(
            State.NO_READY_BACKEND,
            None,
            (),
            f"neither primary {primary} nor any secondary has ready endpoints; "
            "weights left unchanged",
        )
    weights = tuple(1 if s in secondaries else 0 for s in services)
    return Decision(
        State.SECONDARIES,
        weights,
        secondaries,
        f"primary {primary} has no ready endpoints; weight moved to {', '.join(secondaries)}",
    )


# -- inputs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitsListed:
    splits: tuple[Split, ...]


@dataclass(frozen=True)
class SplitChanged:
    split: Split


@dataclass(frozen=True)
class SplitRemoved:
    key: ObjectKey


@dataclass(frozen=True)
class EndpointsListed:
    ready: Mapping[ObjectKey, bool]


@dataclass(frozen=True)
class EndpointsChanged:
    key: ObjectKey
    ready: bool


@dataclass(frozen=True)
class EndpointsRemoved:
    key: ObjectKey


@dataclass(frozen=True)
class PatchDone:
    """The outcome of a ``Patch``; ``error`` says why it failed, ``conflict`` that the
    split changed meanwhile (its watch event decides again; no Warning)."""

    patch: Patch
    ok: bool
    error: str = ""
    conflict: bool = False
    result: Split | None = None
    """The split as the patch left it (decisions until its watch event use it)."""


@dataclass(frozen=True)
class Resync:
    """Decide every split again (periodically: retries failed patches)."""


Input = (
    SplitsListed
    | SplitChanged
    | SplitRemoved
    | EndpointsListed
    | EndpointsChanged
    | EndpointsRemoved
    | PatchDone
    | Resync
)


# -- commands ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Patch:
    """Write ``weights`` to ``split`` with the JSON Patch ``ops``."""

    split: Split
    decision: Decision

    @property
    def ops(self) -> list[dict[str, Any]]:
        assert self.decision.weights is not None
        ops: list[dict[str, Any]] = []
        if self.split.resource_version:
            ops.append(
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": self.split.resource_version,
                }
            )
        for i, (backend, weight) in enumerate(
            zip(self.split.backends, self.decision.weights, strict=True)
        ):
            ops.append(
                {"op": "test", "path": f"/spec/backends/{i}/service", "value": backend.service}
            )
            ops.append({"op": "replace", "path": f"/spec/backends/{i}/weight", "value": weight})
        return ops


@dataclass(frozen=True)
class RecordEvent:
    """A Kubernetes Event on ``split``."""

    split: Split
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Observe:
    """The split's state and weights now (for metrics)."""

    split: Split
    state: State


@dataclass(frozen=True)
class Forget:
    """The split is gone or no longer managed (drop its metrics)."""

    key: ObjectKey


Command = Patch | RecordEvent | Observe | Forget

REASONS = {
    State.PRIMARY: "FailoverPrimary",
    State.SECONDARIES: "FailoverSecondaries",
    State.NO_READY_BACKEND: "FailoverNoReadyBackend",
    State.INVALID: "FailoverInvalid",
}
"""The Event reason for a split entering each state (Normal for the first two)."""


def _matches(split: Split, weights: tuple[int, ...]) -> bool:
    return split.weights() == tuple(Decimal(w) for w in weights)


class FailoverCore:
    """Every managed split and every Service's readiness; decides on each change."""

    def __init__(self) -> None:
        self._splits: dict[ObjectKey, Split] = {}
        self._ready: dict[ObjectKey, bool] = {}
        self._splits_listed = False
        self._endpoints_listed = False
        self._pending: dict[ObjectKey, tuple[str, tuple[int, ...]]] = {}
        self._announced: dict[ObjectKey, tuple[State, tuple[str, ...]]] = {}

    @property
    def synced(self) -> bool:
        """Both the splits and the Endpoints have been listed."""
        return self._splits_listed and self._endpoints_listed

    def splits(self) -> tuple[Split, ...]:
        return tuple(self._splits.values())

    def handle(self, event: Input) -> list[Command]:
        """The commands ``event`` calls for."""
        match event:
            case SplitsListed(splits):
                gone = set(self._splits) - {s.key for s in splits}
                self._splits = {s.key: s for s in splits}
                self._splits_listed = True
                return [*(c for k in sorted(gone) for c in self._forget(k)), *self._all()]
            case SplitChanged(split):
                self._splits[split.key] = split
                return self._reconcile(split.key)
            case SplitRemoved(key):
                self._splits.pop(key, None)
                return self._forget(key)
            case EndpointsListed(ready):
                self._ready = dict(ready)
                self._endpoints_listed = True
                return self._all()
            case EndpointsChanged(key, ready):
                before = self._ready.get(key, False)
                self._ready[key] = ready
                return self._affected(key) if before != ready else []
            case EndpointsRemoved(key):
                before = self._ready.pop(key, False)
                return self._affected(key) if before else []
            case PatchDone(patch, ok, error, conflict, result):
                return self._patched(patch, ok, error, conflict, result)
            case Resync():
                return self._all()
        raise TypeError(f"unknown input {event!r}")

    # -- internals ---------------------------------------------------------------------------
    def _forget(self, key: ObjectKey) -> list[Command]:
        self._pending.pop(key, None)
        self._announced.pop(key, None)
        return [Forget(key)]

    def _all(self) -> list[Command]:
        return [c for key in sorted(self._splits) for c in self._reconcile(key)]

    def _affected(self, service: ObjectKey) -> list[Command]:
        keys = [
            key
            for key, split in sorted(self._splits.items())
            if split.namespace == service.namespace
            and any(b.service == service.name for b in split.backends)
        ]
        return [c for key in keys for c in self._reconcile(key)]

    def _is_ready(self, namespace: str) -> Callable[[str], bool]:
        return lambda name: self._ready.get(ObjectKey(namespace, name), False)

    def _reconcile(self, key: ObjectKey) -> list[Command]:
        split = self._splits.get(key)
        if split is None or not self.synced:
            return []
        decision = decide(split, self._is_ready(split.namespace))
        commands: list[Command] = [Observe(split, decision.state)]
        if decision.weights is None:
            commands.extend(self._announce(split, decision))
            return commands
        if _matches(split, decision.weights):
            self._pending.pop(key, None)
            self._announced[key] = (decision.state, decision.active)
            return commands
        wanted = (split.resource_version, decision.weights)
        if self._pending.get(key) != wanted:
            self._pending[key] = wanted
            commands.append(Patch(split, decision))
        return commands

    def _announce(self, split: Split, decision: Decision) -> list[Command]:
        now = (decision.state, decision.active)
        if self._announced.get(split.key) == now:
            return []
        self._announced[split.key] = now
        kind = "Normal" if decision.state in (State.PRIMARY, State.SECONDARIES) else "Warning"
        return [RecordEvent(split, kind, REASONS[decision.state], decision.message)]

    def _patched(
        self, patch: Patch, ok: bool, error: str, conflict: bool, result: Split | None
    ) -> list[Command]:
        key = patch.split.key
        if ok:
            # pending stays until a newer version is known: deciding again on the old
            # one meanwhile must not patch twice.
            current = self._splits.get(key)
            if result is not None and current is not None and current.uid == result.uid:
                self._splits[key] = result
            return self._announce(patch.split, patch.decision)
        wanted = (patch.split.resource_version, patch.decision.weights)
        if self._pending.get(key) == wanted:
            del self._pending[key]
        if conflict:
            return []
        return [
            RecordEvent(
                patch.split,
                "Warning",
                "FailoverPatchFailed",
                f"could not set weights {list(patch.decision.weights or ())} "
                f"({patch.decision.message}): {error}",
            )
        ]
