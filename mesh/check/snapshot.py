"""What ``isthmus check`` knows about a cluster: one immutable snapshot, and the results.

``ClusterSnapshot`` is everything the checks read, fetched once by the thin
lightkube layer (``fetch``) or written by hand in tests. ``Result`` is one line
of the report: what was checked, whether it held, and for failures and
warnings what is wrong and what to do about it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Access", "ClusterSnapshot", "DeploymentState", "Result", "Status"]


class Status(enum.Enum):
    """A check's outcome; the values are Linkerd's ``check -o json`` ``result`` strings."""

    OK = "success"
    WARN = "warning"
    FAIL = "error"


@dataclass(frozen=True)
class Result:
    """One checked condition."""

    category: str
    description: str
    status: Status
    message: str = ""
    """What is wrong (empty when it holds)."""
    hint: str = ""
    """What to do about it."""
    retryable: bool = False
    """A failure that may clear by itself (pods starting); ``check --wait`` retries it."""


@dataclass(frozen=True)
class DeploymentState:
    """A Deployment's wanted and ready replicas."""

    desired: int
    ready: int


@dataclass(frozen=True)
class Access:
    """A SelfSubjectAccessReview question: may I ``verb`` ``resource`` (in ``namespace``)?"""

    verb: str
    group: str
    resource: str
    namespace: str = ""

    def __str__(self) -> str:
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.verb} {kind}{where}"


@dataclass(frozen=True)
class ClusterSnapshot:
    """The cluster as ``check`` saw it at ``now``.

    Objects are keyed by name and limited to the control-plane namespace;
    absent keys mean the object does not exist. ``api_error`` set means the API
    could not be queried and nothing else was fetched.
    """

    now: datetime
    control_plane_ns: str = "linkerd"
    api_error: str | None = None
    server_version: str = ""
    """The API server's gitVersion, e.g. ``v1.35.4``."""
    crds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Our CRDs that exist -> the versions they serve."""
    namespace_exists: bool | None = False
    """``None``: not known (the user may not read namespaces)."""
    deployments: Mapping[str, DeploymentState] = field(default_factory=dict)
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)
    """Secret name -> decoded data."""
    webhook_ca_bundles: Mapping[str, bytes] = field(default_factory=dict)
    """MutatingWebhookConfiguration name -> the caBundle (PEM) of its injector webhook."""
    access: Mapping[Access, bool] = field(default_factory=dict)
    """Answers to the SelfSubjectAccessReviews ``check --pre`` asks."""
