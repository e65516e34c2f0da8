"""The policy service: inbound policy for every port of every meshed pod.

The core is sans-IO: ``resources`` holds typed snapshots of Namespaces and the
``policy.linkerd.io`` resources, ``snapshot`` stores them with the pods,
``defaults`` computes a pod's default policy, ``inbound`` the policy of one pod
port (``model``), and ``watcher`` tracks open subscriptions and says what each
must be sent as the cluster changes. ``convert`` (lightkube to snapshots),
``translate`` (to ``isthmus.policy.v1`` messages) and ``server`` (gRPC and
Kubernetes I/O, ``main``) are the edge.
"""

from mesh.policy.defaults import DefaultPolicy, PolicyConfig, parse_networks
from mesh.policy.inbound import PolicyError, inbound_server
from mesh.policy.model import (
    ALL_NETWORKS,
    Authentication,
    Authorization,
    InboundServer,
    Network,
    Protocol,
    Ref,
    TlsAuthenticated,
    Unauthenticated,
)
from mesh.policy.snapshot import PolicySnapshot
from mesh.policy.watcher import PodGone, PodNotFound, PolicyWatcher, PortTarget, TargetError

__all__ = [
    "ALL_NETWORKS",
    "Authentication",
    "Authorization",
    "DefaultPolicy",
    "InboundServer",
    "Network",
    "PodGone",
    "PodNotFound",
    "PolicyConfig",
    "PolicyError",
    "PolicySnapshot",
    "PolicyWatcher",
    "PortTarget",
    "Protocol",
    "Ref",
    "TargetError",
    "TlsAuthenticated",
    "Unauthenticated",
    "inbound_server",
    "parse_networks",
]
