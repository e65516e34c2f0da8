"""Inbound authorization: which clients may talk to a port, sans I/O.

The policy controller's client (or a static configuration) implements
``PolicySource``: for each inbound port, the ``Server`` that selects it, or the
pod's default policy made into an equivalent server by ``default_server``.

Rules, following Linkerd:
- An ``Authorization`` admits a client when the client's IP lies in one of its
  ``networks`` (minus their exceptions) *and* its authentication holds:
  ``Unauthenticated`` admits anyone; ``MeshTls`` needs a verified client
  identity matching one of its patterns (``*`` any, ``*.suffix``, or exact).
  An AuthorizationPolicy with several authentications is one Authorization
  with both constraints (all must hold).
- ``authorize`` returns the first admitting authorization (``Allow``), or
  ``Deny``. Probe paths of a server are admitted for anyone (Linkerd's
  ``default:probe`` authorization for kubelet probes).
- Default policies: ``all-unauthenticated``, ``all-authenticated``,
  ``cluster-unauthenticated``, ``cluster-authenticated`` (the cluster networks),
  ``deny``. Their server and authorization are named after the policy with kind
  ``default``, as Linkerd labels them.
- The proxy answers a denied HTTP request with 403 and closes a denied TCP
  connection; this module only decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

__all__ = [
    "ALL_NETWORKS",
    "DEFAULT_CLUSTER_NETWORKS",
    "POLICY_GROUP",
    "Allow",
    "Authentication",
    "Authorization",
    "Client",
    "DefaultPolicy",
    "Deny",
    "MeshTls",
    "Network",
    "PolicySource",
    "ProxyProtocol",
    "Server",
    "StaticPolicy",
    "Unauthenticated",
    "authorize",
    "default_server",
    "parse_networks",
]

POLICY_GROUP = "policy.linkerd.io"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ProxyProtocol(StrEnum):
    """A server's ``proxyProtocol``; ``unknown`` means detect."""

    DETECT = "unknown"
    HTTP1 = "HTTP/1"
    HTTP2 = "HTTP/2"
    GRPC = "gRPC"
    OPAQUE = "opaque"
    TLS = "TLS"


@dataclass(frozen=True, slots=True)
class Network:
    """A CIDR a client may come from, with excepted sub-ranges."""

    cidr: IPNetwork
    exceptions: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        """Whether ``ip`` is in the CIDR and in none of the exceptions."""
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip.version == e.version and ip in e for e in self.exceptions)

    @classmethod
    def parse(cls, cidr: str, exceptions: Iterable[str] = ()) -> Network:
        """A network from text (``10.0.0.0/8``); a bare address is a /32 or /128."""
        return cls(
            ipaddress.ip_network(cidr, strict=False),
            tuple(ipaddress.ip_network(e, strict=False) for e in exceptions),
        )


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Networks from CIDR strings (a comma-separated setting, split)."""
    return tuple(Network.parse(c.strip()) for c in cidrs if c.strip())


ALL_NETWORKS = parse_networks(["0.0.0.0/0", "::/0"])
DEFAULT_CLUSTER_NETWORKS = parse_networks(
    ["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"]
)
"""Linkerd's default ``clusterNetworks``."""


@dataclass(frozen=True, slots=True)
class Unauthenticated:
    """Any client, with or without TLS."""


@dataclass(frozen=True, slots=True)
class MeshTls:
    """Clients with a verified mesh identity matching one of ``identities``.

    A pattern is ``*`` (any identity), ``*.<suffix>`` (identities ending in
    ``.<suffix>``) or an exact identity.
    """

    identities: tuple[str, ...] = ("*",)

    def admits(self, identity: str) -> bool:
        """Whether ``identity`` matches one of the patterns."""
        for pattern in self.identities:
            if pattern == "*" or pattern == identity:
                return True
            if pattern.startswith("*.") and identity.endswith(pattern[1:]):
                return True
        return False


Authentication = Unauthenticated | MeshTls


@dataclass(frozen=True, slots=True)
class Authorization:
    """A named rule admitting clients (metric labels ``authz_*``)."""

    name: str
    kind: str = "authorizationpolicy"
    group: str = POLICY_GROUP
    authentication: Authentication = Unauthenticated()
    networks: tuple[Network, ...] = ALL_NETWORKS

    def admits(self, client: Client) -> bool:
        """Whether ``client`` meets every constraint of this authorization."""
        if not any(n.contains(client.ip) for n in self.networks):
            return False
        auth = self.authentication
        if isinstance(auth, MeshTls):
            return client.identity is not None and auth.admits(client.identity)
        return True


@dataclass(frozen=True, slots=True)
class Server:
    """The policy of one inbound port (metric labels ``srv_*``)."""

    name: str
    kind: str = "server"
    group: str = POLICY_GROUP
    protocol: ProxyProtocol = ProxyProtocol.DETECT
    authorizations: tuple[Authorization, ...] = ()
    probe_paths: tuple[str, ...] = ()


class DefaultPolicy(StrEnum):
    """A pod's default inbound policy."""

    ALL_UNAUTHENTICATED = "all-unauthenticated"
    ALL_AUTHENTICATED = "all-authenticated"
    CLUSTER_UNAUTHENTICATED = "cluster-unauthenticated"
    CLUSTER_AUTHENTICATED = "cluster-authenticated"
    DENY = "deny"


def default_server(
    policy: DefaultPolicy,
    *,
    cluster_networks: tuple[Network, ...] = DEFAULT_CLUSTER_NETWORKS,
    protocol: ProxyProtocol = ProxyProtocol.DETECT,
    probe_paths: tuple[str, ...] = (),
) -> Server:
    """The server Linkerd synthesises for a port covered only by ``policy``."""
    networks = ALL_NETWORKS
    if policy in (DefaultPolicy.CLUSTER_AUTHENTICATED, DefaultPolicy.CLUSTER_UNAUTHENTICATED):
        networks = cluster_networks
    authentication: Authentication = Unauthenticated()
    if policy in (DefaultPolicy.ALL_AUTHENTICATED, DefaultPolicy.CLUSTER_AUTHENTICATED):
        authentication = MeshTls()
    authorizations: tuple[Authorization, ...] = ()
    if policy is not DefaultPolicy.DENY:
        authorizations = (
            Authorization(
                name=policy.value,
                kind="default",
                group="",
                authentication=authentication,
                networks=networks,
            ),
        )
    return Server(
        name=policy.value,
        kind="default",
        group="",
        protocol=protocol,
        authorizations=authorizations,
        probe_paths=probe_paths,
    )


PROBE_AUTHORIZATION = Authorization(name="probe", kind="default", group="")


@dataclass(frozen=True, slots=True)
class Client:
    """Who is connecting: verified mesh identity (``None`` without mTLS) and IP."""

    identity: str | None
    ip: IPAddress

    @classmethod
    def of(cls, identity: str | None, ip: str) -> Client:
        """A client from an IP string (an IPv4-mapped IPv6 address counts as IPv4)."""
        parsed = ipaddress.ip_address(ip)
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        return cls(identity, parsed)


@dataclass(frozen=True, slots=True)
class Allow:
    """Admitted by ``authorization`` of ``server``."""

    server: Server
    authorization: Authorization


@dataclass(frozen=True, slots=True)
class Deny:
    """No authorization of ``server`` admits the client."""

    server: Server


def authorize(
    server: Server, client: Client, *, method: str | None = None, path: str | None = None
) -> Allow | Deny:
    """Decide whether ``client`` may use ``server`` (for HTTP, this ``method`` and ``path``)."""
    for authorization in server.authorizations:
        if authorization.admits(client):
            return Allow(server, authorization)
    probing = server.probe_paths and method in ("GET", "HEAD") and path is not None
    if probing and path is not None and path.split("?", 1)[0] in server.probe_paths:
        return Allow(server, PROBE_AUTHORIZATION)
    return Deny(server)


class PolicySource(Protocol):
    """Where the proxy learns each inbound port's server."""

    def server(self, port: int) -> Server:
        """The server for ``port`` (the default policy's, if none selects it)."""
        ...


@dataclass
class StaticPolicy:
    """A ``PolicySource`` from a fixed table; the policy client may replace ``servers``."""

    default: Server = field(
        default_factory=lambda: default_server(DefaultPolicy.ALL_UNAUTHENTICATED)
    )
    servers: Mapping[int, Server] = field(default_factory=dict)

    def server(self, port: int) -> Server:
        """The server for ``port``, else the default."""
        return self.servers.get(port, self.default)
