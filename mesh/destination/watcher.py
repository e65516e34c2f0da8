"""Discovery subscriptions over a cluster snapshot, sans I/O.

The watcher holds the snapshot and every open subscription (one per ``Get`` or
``GetProfile`` stream). Subscribing returns the first answer; ``apply``ing a
watch event returns, per subscription whose answer changed, what to send next.
A subscription on a service is recomputed only when an event touches its
namespace; one on an IP (whose meaning can move between services and pods) on
every event. Subscribe only once ``synced``: before that, every service looks
missing. Remote-discovery mirrors and federated services are answered from the
remote clusters' snapshots (``remotes``); subscribing to one whose cluster is not
found raises ``RemoteClusterNotFound`` at once (CONF-26), and a subscription whose
cluster stops being found (its Link or credentials Secret deleted or unusable, or its
API server refusing the credentials) is first sent ``NoEndpoints(exists=False)`` (the
proxy empties its set: it keeps the last endpoints of a stream that merely ends) and
then told to end the same way (``Changes.not_found``).
TrafficSplit and HTTPRoute events feed the ``SplitStore`` the profiles
are split by; they do not count towards ``synced`` (a cluster without those
CRDs still gets discovery).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NewType, cast

from mesh.destination.authority import ServiceTarget, Target
from mesh.destination.config import DiscoveryConfig
from mesh.destination.endpoints import Resolution, Update, diff
from mesh.destination.profiles import Profile, profile
from mesh.destination.remote import REMOTE_EVENT_TYPES, RemoteClusters, RemoteEvent
from mesh.destination.remote_endpoints import RemoteMissing, resolve_with_remotes
from mesh.destination.snapshot import ClusterSnapshot, SnapshotEvent, Touched
from mesh.destination.split_objects import HttpRoute, TrafficSplit
from mesh.destination.splits import Problem, SplitEvent, SplitStore, problems
from mesh.k8s.events import Listed

__all__ = ["Changes", "DestinationWatcher", "RemoteClusterNotFound", "SubscriptionId"]

SubscriptionId = NewType("SubscriptionId", int)


class RemoteClusterNotFound(LookupError):
    """The target is answered by a remote cluster discovery cannot reach (CONF-26)."""


@dataclass
class _EndpointsWatch:
    target: Target
    seen: Resolution


@dataclass
class _ProfileWatch:
    target: Target
    seen: Profile


@dataclass(frozen=True)
class Changes:
    """What to send after an event: updates per ``Get`` stream, a new profile per ``GetProfile``."""

    endpoints: dict[SubscriptionId, list[Update]] = field(default_factory=dict)
    profiles: dict[SubscriptionId, Profile] = field(default_factory=dict)
    not_found: dict[SubscriptionId, str] = field(default_factory=dict)
    """``Get`` streams to end: their remote cluster is no longer found (CONF-26)."""

    def __bool__(self) -> bool:
        return bool(self.endpoints or self.profiles or self.not_found)


def _affected(target: Target, touched: Touched) -> bool:
    if touched is None or not isinstance(target, ServiceTarget):
        return True
    return target.namespace in touched


class DestinationWatcher:
    """Open discovery subscriptions and the snapshot they are answered from."""

    def __init__(self, config: DiscoveryConfig, snapshot: ClusterSnapshot | None = None) -> None:
        self.config = config
        self.snapshot = snapshot if snapshot is not None else ClusterSnapshot()
        self.remotes = RemoteClusters(config)
        self.splits = SplitStore()
        self._ids = itertools.count(1)
        self._endpoints: dict[SubscriptionId, _EndpointsWatch] = {}
        self._profiles: dict[SubscriptionId, _ProfileWatch] = {}

    @property
    def synced(self) -> bool:
        """Whether every kind of object has been listed, so answers are complete."""
        return self.snapshot.synced

    def __len__(self) -> int:
        return len(self._endpoints) + len(self._profiles)

    def _next_id(self) -> SubscriptionId:
        return SubscriptionId(next(self._ids))

    def watch_endpoints(self, target: Target) -> tuple[SubscriptionId, list[Update]]:
        """Open a ``Get`` subscription; return its id and the updates describing the whole set."""
        resolution = self._resolve(target)
        if isinstance(resolution, RemoteMissing):
            raise RemoteClusterNotFound(resolution.message)
        sub = self._next_id()
        self._endpoints[sub] = _EndpointsWatch(target, resolution)
        return sub, diff(None, resolution)

    def _resolve(self, target: Target) -> Resolution:
        return resolve_with_remotes(self.snapshot, self.config, self.remotes, target)

    def watch_profile(self, target: Target) -> tuple[SubscriptionId, Profile]:
        """Open a ``GetProfile`` subscription; return its id and the first profile."""
        current = profile(self.snapshot, self.config, target, self.splits)
        sub = self._next_id()
        self._profiles[sub] = _ProfileWatch(target, current)
        return sub, current

    def unwatch(self, sub: SubscriptionId) -> None:
        """Close a subscription; unknown ids are ignored."""
        self._endpoints.pop(sub, None)
        self._profiles.pop(sub, None)

    def problems(self) -> frozenset[Problem]:
        """What is wrong with the split objects now (to report as Events)."""
        return problems(self.snapshot, self.splits)

    def _record(self, event: SnapshotEvent | SplitEvent) -> Touched:
        if isinstance(event, Listed):
            split_kind = issubclass(event.kind, (TrafficSplit, HttpRoute))
        else:
            split_kind = isinstance(event.obj, (TrafficSplit, HttpRoute))
        if split_kind:
            return self.splits.apply(cast(SplitEvent, event))
        return self.snapshot.apply(cast(SnapshotEvent, event))

    def apply(self, event: SnapshotEvent | SplitEvent | RemoteEvent) -> Changes:
        """Record ``event``; return what each affected subscription must be sent."""
        if isinstance(event, REMOTE_EVENT_TYPES):
            touched = self.remotes.apply(event)
            if touched is not None and not touched:
                return Changes()
        else:
            touched = self._record(event)
        changes = Changes()
        for sub, watch in self._endpoints.items():
            if not _affected(watch.target, touched):
                continue
            resolution = self._resolve(watch.target)
            if isinstance(resolution, RemoteMissing):
                if not isinstance(watch.seen, RemoteMissing):
                    # the proxy keeps the last endpoints of a stream that ends: empty them first
                    changes.endpoints[sub] = diff(watch.seen, resolution)
                    changes.not_found[sub] = resolution.message
                watch.seen = resolution
                continue
            updates = diff(watch.seen, resolution)
            watch.seen = resolution
            if updates:
                changes.endpoints[sub] = updates
        for sub, pwatch in self._profiles.items():
            if not _affected(pwatch.target, touched):
                continue
            current = profile(self.snapshot, self.config, pwatch.target, self.splits)
            if current != pwatch.seen:
                pwatch.seen = current
                changes.profiles[sub] = current
        return changes
