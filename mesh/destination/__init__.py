"""The destination service: service discovery and profiles for proxies.

The core is sans-IO: ``authority`` parses what a proxy asks about,
``snapshot`` holds the cluster's Services, EndpointSlices and Pods,
``endpoints`` and ``profiles`` compute answers, and ``watcher`` tracks open
subscriptions and says what each must be sent as the cluster changes.
``server`` is the gRPC and Kubernetes I/O around it.
"""

from mesh.destination.authority import AuthorityError, IpTarget, ServiceTarget, Target
from mesh.destination.config import DiscoveryConfig
from mesh.destination.endpoints import (
    Add,
    Address,
    EndpointSet,
    Missing,
    NoEndpoints,
    Remove,
    Resolution,
    Update,
    WeightedEndpoint,
    diff,
    resolve,
)
from mesh.destination.profiles import Profile, WeightedDst, profile
from mesh.destination.snapshot import ClusterSnapshot
from mesh.destination.watcher import Changes, DestinationWatcher, SubscriptionId

__all__ = [
    "Add",
    "Address",
    "AuthorityError",
    "Changes",
    "ClusterSnapshot",
    "DestinationWatcher",
    "DiscoveryConfig",
    "EndpointSet",
    "IpTarget",
    "Missing",
    "NoEndpoints",
    "Profile",
    "Remove",
    "Resolution",
    "ServiceTarget",
    "SubscriptionId",
    "Target",
    "Update",
    "WeightedDst",
    "WeightedEndpoint",
    "diff",
    "profile",
    "resolve",
]
