"""What the policy service computes for one port of one pod: an ``InboundServer``.

Plain values mirroring ``isthmus.policy.v1.Server`` (``mesh.policy.translate``
turns them into messages), so the core's answers compare with ``==`` and
tests read as tables. Every authorization and server carries a ``Ref`` naming
where it came from; its ``labels`` are what the proxy puts on its metrics,
exactly as Linkerd's policy controller labels them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mesh.policy.resources import POLICY_GROUP

__all__ = [
    "ALL_NETWORKS",
    "DEFAULT_DETECT_TIMEOUT",
    "Authentication",
    "Authorization",
    "InboundServer",
    "Network",
    "Protocol",
    "Ref",
    "TlsAuthenticated",
    "Unauthenticated",
]

DEFAULT_DETECT_TIMEOUT = 10.0
"""Seconds the proxy waits for a client's first bytes before treating them as opaque."""


class Protocol(StrEnum):
    """How the proxy serves the port."""

    DETECT = "detect"
    HTTP1 = "http1"
    OPAQUE = "opaque"


@dataclass(frozen=True, order=True)
class Ref:
    """The object a server or authorization stands for: ``group``, ``kind``, ``name``."""

    group: str
    kind: str
    name: str

    @classmethod
    def default(cls, name: str) -> Ref:
        """A default policy (``kind: default``), e.g. ``all-unauthenticated``."""
        return cls("", "default", name)

    @classmethod
    def server(cls, name: str) -> Ref:
        return cls(POLICY_GROUP, "server", name)

    @classmethod
    def authorization_policy(cls, name: str) -> Ref:
        return cls(POLICY_GROUP, "authorizationpolicy", name)

    @classmethod
    def server_authorization(cls, name: str) -> Ref:
        return cls(POLICY_GROUP, "serverauthorization", name)

    def labels(self) -> dict[str, str]:
        return {"group": self.group, "kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class Network:
    """Clients from ``net`` except those in ``excepted`` (CIDR text)."""

    net: str
    excepted: tuple[str, ...] = ()


ALL_NETWORKS = (Network("0.0.0.0/0"), Network("::/0"))


@dataclass(frozen=True)
class Unauthenticated:
    """Any client, with or without mesh TLS."""


@dataclass(frozen=True)
class TlsAuthenticated:
    """Clients with a verified mesh identity: one of ``identities`` or ending in a suffix.

    A suffix is matched on whole labels (``ns.serviceaccount.identity.linkerd.td``);
    the empty suffix admits every authenticated client.
    """

    identities: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()


Authentication = Unauthenticated | TlsAuthenticated


@dataclass(frozen=True)
class Authorization:
    """Admits a client that comes from one of ``networks`` and passes ``authentication``."""

    ref: Ref
    networks: tuple[Network, ...]
    authentication: Authentication


@dataclass(frozen=True)
class InboundServer:
    """The policy of one inbound port; a client is admitted if any authorization admits it.

    A GET (or HEAD) of one of ``probe_paths`` — the pod's kubelet HTTP probes on
    the port, sorted and unique — is admitted for anyone, whatever the authorizations.
    """

    ref: Ref
    protocol: Protocol = Protocol.DETECT
    authorizations: tuple[Authorization, ...] = ()
    detect_timeout: float = DEFAULT_DETECT_TIMEOUT
    probe_paths: tuple[str, ...] = ()
