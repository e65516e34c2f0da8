"""Typed snapshots of what inbound policy is computed from, besides Pods.

Namespaces and the ``policy.linkerd.io`` resources (Server, ServerAuthorization,
AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication) as frozen
dataclasses holding only the fields the policy core reads. ``mesh.policy.convert``
builds them at the edge; tests build them directly.

A resource the converter could not make sense of keeps its name and carries
the reason in ``error``; the core treats it as absent (as Linkerd's admission
controller would have refused it), so one bad object never stops the feed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mesh.k8s.objects import ObjectKey

__all__ = [
    "POLICY_GROUP",
    "AuthorizationPolicy",
    "LabelSelector",
    "MeshTLSAuthentication",
    "Namespace",
    "NetworkAuthentication",
    "NetworkMatch",
    "Requirement",
    "ResourceRef",
    "Server",
    "ServerAuthorization",
]

POLICY_GROUP = "policy.linkerd.io"


@dataclass(frozen=True)
class Namespace:
    """A Namespace: its annotations may set the default inbound policy of its pods."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry: ``In``, ``NotIn``, ``Exists`` or ``DoesNotExist``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        return False


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector; the empty selector selects everything."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` meet every label and every expression."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )


@dataclass(frozen=True)
class NetworkMatch:
    """A client network: a CIDR and the CIDRs inside it that are excepted (normalised text)."""

    cidr: str
    excepted: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceRef:
    """A ``targetRef`` or an authentication ref; namespace ``""`` means the referrer's."""

    group: str
    kind: str
    name: str
    namespace: str = ""

    def refers_to(self, group: str, kind: str) -> bool:
        """Whether this names an object of ``kind`` in ``group`` (kinds compare case-blind)."""
        own = "" if self.group in ("", "core") else self.group
        return own == group and self.kind.lower() == kind.lower()

    def key(self, referrer_namespace: str) -> ObjectKey:
        """Where the referenced object lives, resolved from the referrer's namespace."""
        return ObjectKey(self.namespace or referrer_namespace, self.name)


@dataclass(frozen=True)
class Server:
    """A ``Server``: the pods' port it selects and how that port is served.

    ``port`` is a number or the name of a container port. ``pod_selector`` is
    ``None`` for a Server that selects external workloads only (never a pod).
    ``created`` is the RFC 3339 creation timestamp: when two Servers select one
    port, the older wins.
    """

    namespace: str
    name: str
    port: int | str = 0
    pod_selector: LabelSelector | None = field(default_factory=LabelSelector)
    proxy_protocol: str = "unknown"
    access_policy: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    error: str = ""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)


@dataclass(frozen=True)
class ServerAuthorization:
    """A legacy ``ServerAuthorization`` (policy.linkerd.io/v1beta1).

    It selects Servers of its namespace by ``server_name`` or, when that is
    empty, by ``server_selector``. Its client is admitted from ``networks``
    (empty: the cluster networks) either unauthenticated, or with mesh TLS
    (``tls_any``: any TLS client; else ``identities`` patterns and the identities
    of ``service_accounts``, ``(namespace, name)`` with ``""`` for its own).
    """

    namespace: str
    name: str
    server_name: str = ""
    server_selector: LabelSelector = field(default_factory=LabelSelector)
    networks: tuple[NetworkMatch, ...] = ()
    unauthenticated: bool = False
    tls_any: bool = False
    identities: tuple[str, ...] = ()
    service_accounts: tuple[tuple[str, str], ...] = ()
    error: str = ""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)


@dataclass(frozen=True)
class AuthorizationPolicy:
    """An ``AuthorizationPolicy``: its target and every authentication a client must pass."""

    namespace: str
    name: str
    target: ResourceRef = field(default_factory=lambda: ResourceRef("", "", ""))
    authentications: tuple[ResourceRef, ...] = ()
    error: str = ""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)


@dataclass(frozen=True)
class MeshTLSAuthentication:
    """A ``MeshTLSAuthentication``: identity patterns and refs (ServiceAccount or Namespace)."""

    namespace: str
    name: str
    identities: tuple[str, ...] = ()
    identity_refs: tuple[ResourceRef, ...] = ()
    error: str = ""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)


@dataclass(frozen=True)
class NetworkAuthentication:
    """A ``NetworkAuthentication``: the client networks it admits."""

    namespace: str
    name: str
    networks: tuple[NetworkMatch, ...] = ()
    error: str = ""

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)
