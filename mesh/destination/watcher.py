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
cluster stops being found is told to end the same way (``Changes.not_found``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NewType

from mesh.destination.authority import ServiceTarget, Target
from mesh.destination.config import DiscoveryConfig
from mesh.destination.endpoints import Resolution, Update, diff
from mesh.destination.profiles import Profile, profile
from mesh.destination.remote import REMOTE_EVENT_TYPES, RemoteClusters, RemoteEvent
from mesh.destination.remote_endpoints import RemoteMissing, resolve_with_remotes
from mesh.destination.snapshot import ClusterSnapshot, SnapshotEvent, Touched

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
        current = profile(self.snapshot, self.config, target)
        sub = self._next_id()
        self._profiles[sub] = _ProfileWatch(target, current)
        return sub, current

    def unwatch(self, sub: SubscriptionId) -> None:
        """Close a subscription; unknown ids are ignored."""
        self._endpoints.pop(sub, None)
        self._profiles.pop(sub, None)

    def apply(self, event: SnapshotEvent | RemoteEvent) -> Changes:
        """Record ``event``; return what each affected subscription must be sent."""
        if isinstance(event, REMOTE_EVENT_TYPES):
            touched = self.remotes.apply(event)
            if touched is not None and not touched:
                return Changes()
        else:
            touched = self.snapshot.apply(event)
        changes = Changes()
        for sub, watch in self._endpoints.items():
            if not _affected(watch.target, touched):
                continue
            resolution = self._resolve(watch.target)
            if isinstance(resolution, RemoteMissing):
                if not isinstance(watch.seen, RemoteMissing):
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
            current = profile(self.snapshot, self.config, pwatch.target)
            if current != pwatch.seen:
                pwatch.seen = current
                changes.profiles[sub] = current
        return changes
