"""Default inbound policies: what a pod's port gets when no ``Server`` selects it.

Rules, following Linkerd's policy controller:
- A pod's default policy is its ``config.linkerd.io/default-inbound-policy``
  annotation, else its namespace's, else the service's ``--default-inbound-policy``;
  an annotation whose value is not a policy name is ignored.
- ``all-unauthenticated``: anyone from anywhere (0.0.0.0/0 and ::/0);
  ``all-authenticated``: any mesh identity from anywhere;
  ``cluster-unauthenticated`` / ``cluster-authenticated``: the same from the
  cluster networks only; ``deny``: no authorization; ``audit``: admits like
  ``all-unauthenticated`` (the proxy is expected to log, not refuse).
  The one authorization and the server are both labelled
  ``{group: "", kind: default, name: <policy>}``.
- A port listed in ``config.linkerd.io/proxy-require-identity-inbound-ports``
  turns an unauthenticated default into its authenticated twin.
- A port is opaque if the pod's ``config.linkerd.io/opaque-ports`` lists it
  (port names are the pod's TCP container ports), else its namespace's, else the
  default opaque ports; otherwise the proxy detects the protocol.
- The proxy's admin port (4191, or the pod's ``config.linkerd.io/admin-port``)
  is always ``all-unauthenticated``. Linkerd authorizes only the kubelet probes
  of it (path-scoped probe routes); admitting everyone there keeps ``/ready``
  and ``/live`` working under ``deny`` whether or not the proxy container
  declares probes, at the cost of also exposing ``/metrics``. Probe paths of
  other ports go with their policy (``mesh.policy.inbound``).
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mesh.k8s.annotations import DEFAULT_OPAQUE_PORTS, OPAQUE_PORTS, PortRanges, parse_ports
from mesh.k8s.objects import Pod
from mesh.policy.model import (
    ALL_NETWORKS,
    DEFAULT_DETECT_TIMEOUT,
    Authentication,
    Authorization,
    InboundServer,
    Network,
    Protocol,
    Ref,
    TlsAuthenticated,
    Unauthenticated,
)
from mesh.policy.resources import Namespace

__all__ = [
    "ADMIN_PORT",
    "DEFAULT_CLUSTER_NETWORKS",
    "DEFAULT_INBOUND_POLICY",
    "DEFAULT_PROXY_ADMIN_PORT",
    "REQUIRE_IDENTITY_PORTS",
    "DefaultPolicy",
    "PolicyConfig",
    "admin_port",
    "default_authorizations",
    "default_server",
    "opaque_ports",
    "parse_networks",
    "pod_default_policy",
    "pod_default_server",
    "pod_port_names",
    "tls_authentication",
]

DEFAULT_INBOUND_POLICY = "config.linkerd.io/default-inbound-policy"
REQUIRE_IDENTITY_PORTS = "config.linkerd.io/proxy-require-identity-inbound-ports"
ADMIN_PORT = "config.linkerd.io/admin-port"
DEFAULT_PROXY_ADMIN_PORT = 4191


class DefaultPolicy(StrEnum):
    """A default inbound policy, by its Linkerd name."""

    ALL_UNAUTHENTICATED = "all-unauthenticated"
    ALL_AUTHENTICATED = "all-authenticated"
    CLUSTER_UNAUTHENTICATED = "cluster-unauthenticated"
    CLUSTER_AUTHENTICATED = "cluster-authenticated"
    DENY = "deny"
    AUDIT = "audit"

    @classmethod
    def parse(cls, text: str) -> DefaultPolicy | None:
        """The policy named ``text`` (surrounding space ignored), or ``None``."""
        try:
            return cls(text.strip())
        except ValueError:
            return None

    def authenticated(self) -> DefaultPolicy:
        """The policy that admits the same networks but only authenticated clients."""
        return _AUTHENTICATED.get(self, self)


_AUTHENTICATED = {
    DefaultPolicy.ALL_UNAUTHENTICATED: DefaultPolicy.ALL_AUTHENTICATED,
    DefaultPolicy.CLUSTER_UNAUTHENTICATED: DefaultPolicy.CLUSTER_AUTHENTICATED,
}


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """Networks from CIDRs (a comma-separated string or a list); ``ValueError`` names a bad one."""
    items = text.split(",") if isinstance(text, str) else text
    networks = []
    for item in items:
        if item.strip():
            networks.append(Network(str(ipaddress.ip_network(item.strip(), strict=False))))
    return tuple(networks)


DEFAULT_CLUSTER_NETWORKS = parse_networks(
    "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
)
"""Linkerd's default ``clusterNetworks`` (as ``isthmus install`` sets them)."""


@dataclass(frozen=True)
class PolicyConfig:
    """The settings inbound policy depends on, fixed for one policy service."""

    cluster_domain: str = "cluster.local"
    trust_domain: str = "cluster.local"
    control_plane_ns: str = "linkerd"
    default_policy: DefaultPolicy = DefaultPolicy.ALL_UNAUTHENTICATED
    cluster_networks: tuple[Network, ...] = DEFAULT_CLUSTER_NETWORKS
    default_opaque_ports: PortRanges = DEFAULT_OPAQUE_PORTS
    proxy_admin_port: int = DEFAULT_PROXY_ADMIN_PORT
    detect_timeout: float = DEFAULT_DETECT_TIMEOUT

    def identity_suffix(self, namespace: str) -> str:
        """What every identity of ``namespace``'s service accounts ends with (after a dot)."""
        return f"{namespace}.serviceaccount.identity.{self.control_plane_ns}.{self.trust_domain}"

    def service_account_identity(self, namespace: str, service_account: str) -> str:
        """The mesh identity of pods running as ``service_account`` in ``namespace``."""
        return f"{service_account}.{self.identity_suffix(namespace)}"


def tls_authentication(patterns: Iterable[str]) -> TlsAuthenticated:
    """Mesh TLS admitting ``patterns``: ``*`` (anyone), ``*.<suffix>`` or an exact identity."""
    identities: list[str] = []
    suffixes: list[str] = []
    for pattern in patterns:
        if pattern == "*":
            suffixes.append("")
        elif pattern.startswith("*."):
            suffixes.append(pattern[2:])
        else:
            identities.append(pattern)
    return TlsAuthenticated(tuple(dict.fromkeys(identities)), tuple(dict.fromkeys(suffixes)))


def default_authorizations(
    policy: DefaultPolicy, config: PolicyConfig
) -> tuple[Authorization, ...]:
    """The authorizations ``policy`` stands for (none for ``deny``)."""
    if policy is DefaultPolicy.DENY:
        return ()
    cluster_only = policy in (
        DefaultPolicy.CLUSTER_UNAUTHENTICATED,
        DefaultPolicy.CLUSTER_AUTHENTICATED,
    )
    authenticated = policy in (DefaultPolicy.ALL_AUTHENTICATED, DefaultPolicy.CLUSTER_AUTHENTICATED)
    authentication: Authentication = (
        TlsAuthenticated(suffixes=("",)) if authenticated else Unauthenticated()
    )
    networks = config.cluster_networks if cluster_only else ALL_NETWORKS
    return (Authorization(Ref.default(policy.value), networks, authentication),)


def default_server(
    policy: DefaultPolicy, config: PolicyConfig, protocol: Protocol = Protocol.DETECT
) -> InboundServer:
    """The server Linkerd synthesises for a port that only ``policy`` covers."""
    return InboundServer(
        ref=Ref.default(policy.value),
        protocol=protocol,
        authorizations=default_authorizations(policy, config),
        detect_timeout=config.detect_timeout,
    )


def pod_port_names(pod: Pod) -> dict[str, tuple[int, ...]]:
    """Name -> numbers of the pod's named TCP container ports (sidecars included)."""
    names: dict[str, list[int]] = {}
    for container in pod.containers:
        for port in container.ports:
            if port.name and port.protocol.upper() == "TCP":
                names.setdefault(port.name, []).append(port.port)
    return {name: tuple(sorted(set(ports))) for name, ports in names.items()}


def _ports(pod: Pod, value: str) -> PortRanges:
    names = pod_port_names(pod)
    return parse_ports(value, lambda name: names.get(name, ()))


def pod_default_policy(
    pod: Pod, namespace: Namespace | None, config: PolicyConfig
) -> DefaultPolicy:
    """The pod's default policy: its annotation, else its namespace's, else the configured one."""
    for notes in (pod.annotations, namespace.annotations if namespace else {}):
        value = notes.get(DEFAULT_INBOUND_POLICY)
        policy = DefaultPolicy.parse(value) if value is not None else None
        if policy is not None:
            return policy
    return config.default_policy


def opaque_ports(pod: Pod, namespace: Namespace | None, config: PolicyConfig) -> PortRanges:
    """The pod's opaque ports: its annotation, else its namespace's, else the defaults."""
    for notes in (pod.annotations, namespace.annotations if namespace else {}):
        value = notes.get(OPAQUE_PORTS)
        if value is not None:
            return _ports(pod, value)
    return config.default_opaque_ports


def admin_port(pod: Pod, config: PolicyConfig) -> int:
    """The port of the pod's proxy admin server."""
    value = pod.annotations.get(ADMIN_PORT, "").strip()
    return int(value) if value.isdigit() and 0 < int(value) < 65536 else config.proxy_admin_port


def pod_default_server(
    pod: Pod, namespace: Namespace | None, port: int, config: PolicyConfig
) -> InboundServer:
    """The server of ``port`` on ``pod`` when no ``Server`` selects it (admin port aside)."""
    policy = pod_default_policy(pod, namespace, config)
    required = pod.annotations.get(REQUIRE_IDENTITY_PORTS)
    if required is not None and port in _ports(pod, required):
        policy = policy.authenticated()
    opaque = port in opaque_ports(pod, namespace, config)
    return default_server(policy, config, Protocol.OPAQUE if opaque else Protocol.DETECT)
