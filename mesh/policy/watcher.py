"""Port-policy subscriptions over a policy snapshot, sans I/O.

The watcher holds the snapshot and every open subscription (one per
``WatchPort`` stream, on one port of one pod). Subscribing returns the first
answer; ``apply``ing a watch event returns, per subscription whose answer
changed, the new ``InboundServer`` — or ``PodGone`` once its pod no longer
exists, after which the subscription is closed. Only subscriptions in a
namespace the event touched are recomputed. Subscribe only once ``synced``:
before that, every pod looks missing.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import NewType

from mesh.policy.defaults import PolicyConfig
from mesh.policy.inbound import inbound_server
from mesh.policy.model import InboundServer
from mesh.policy.snapshot import PolicyEvent, PolicySnapshot

__all__ = [
    "PodGone",
    "PodNotFound",
    "PolicyWatcher",
    "PortTarget",
    "SubscriptionId",
    "TargetError",
]

SubscriptionId = NewType("SubscriptionId", int)

_MAX_PORT = 65535


class TargetError(ValueError):
    """A ``WatchPort`` request that names no pod port; the message says what is wrong."""


class PodNotFound(LookupError):
    """The pod a subscription asks about is not in the cluster."""


def _json_workload(text: str) -> tuple[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        return "", ""
    if not isinstance(value, dict):
        return "", ""
    ns, pod = value.get("ns"), value.get("pod")
    return (ns, pod) if isinstance(ns, str) and isinstance(pod, str) else ("", "")


@dataclass(frozen=True)
class PortTarget:
    """One port of one pod."""

    namespace: str
    pod: str
    port: int

    @classmethod
    def parse(cls, workload: str, port: int) -> PortTarget:
        """The target of a ``Workload`` request: ``"<namespace>:<pod>"`` and a port.

        Linkerd's newer ``{"ns": "<namespace>", "pod": "<pod>"}`` form is accepted too.
        """
        namespace, colon, pod = workload.partition(":")
        if workload.lstrip().startswith("{"):
            namespace, pod = _json_workload(workload)
        elif not colon or ":" in pod:
            namespace = pod = ""
        if not namespace or not pod:
            raise TargetError(f"workload {workload!r} is not '<namespace>:<pod>'")
        if not 0 < port <= _MAX_PORT:
            raise TargetError(f"port {port} is not between 1 and {_MAX_PORT}")
        return cls(namespace, pod, port)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod}:{self.port}"


@dataclass(frozen=True)
class PodGone:
    """The subscription's pod was deleted; it gets no further answers."""

    target: PortTarget


@dataclass
class _Watch:
    target: PortTarget
    seen: InboundServer


class PolicyWatcher:
    """Open port subscriptions and the snapshot they are answered from."""

    def __init__(self, config: PolicyConfig, snapshot: PolicySnapshot | None = None) -> None:
        self.config = config
        self.snapshot = snapshot if snapshot is not None else PolicySnapshot()
        self._ids = itertools.count(1)
        self._watches: dict[SubscriptionId, _Watch] = {}

    @property
    def synced(self) -> bool:
        """Whether every kind of object has been listed, so answers are complete."""
        return self.snapshot.synced

    def __len__(self) -> int:
        return len(self._watches)

    def _answer(self, target: PortTarget) -> InboundServer | None:
        pod = self.snapshot.pod(target.namespace, target.pod)
        if pod is None:
            return None
        return inbound_server(self.snapshot, self.config, pod, target.port)

    def watch(self, target: PortTarget) -> tuple[SubscriptionId, InboundServer]:
        """Open a subscription; return its id and the port's policy. ``PodNotFound`` if no pod."""
        current = self._answer(target)
        if current is None:
            raise PodNotFound(f"pod {target.namespace}/{target.pod} not found")
        sub = SubscriptionId(next(self._ids))
        self._watches[sub] = _Watch(target, current)
        return sub, current

    def unwatch(self, sub: SubscriptionId) -> None:
        """Close a subscription; unknown ids are ignored."""
        self._watches.pop(sub, None)

    def apply(self, event: PolicyEvent) -> dict[SubscriptionId, InboundServer | PodGone]:
        """Record ``event``; return what each affected subscription must be sent."""
        touched = self.snapshot.apply(event)
        changes: dict[SubscriptionId, InboundServer | PodGone] = {}
        for sub, watch in list(self._watches.items()):
            if touched is not None and watch.target.namespace not in touched:
                continue
            current = self._answer(watch.target)
            if current is None:
                changes[sub] = PodGone(watch.target)
                del self._watches[sub]
            elif current != watch.seen:
                watch.seen = current
                changes[sub] = current
        return changes
