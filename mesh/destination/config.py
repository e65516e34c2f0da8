"""The settings discovery answers depend on, fixed for one destination service."""

from __future__ import annotations

from dataclasses import dataclass

from mesh.k8s.annotations import DEFAULT_OPAQUE_PORTS, PortRanges

__all__ = ["DEFAULT_PROXY_INBOUND_PORT", "DEFAULT_WEIGHT", "DiscoveryConfig"]

DEFAULT_WEIGHT = 10000
"""The load-balancing weight of an ordinary endpoint."""
DEFAULT_PROXY_INBOUND_PORT = 4143
"""Where a meshed pod's proxy accepts inbound connections (opaque transport)."""


@dataclass(frozen=True)
class DiscoveryConfig:
    """Where this cluster's names and identities live, and the proxy defaults to assume."""

    cluster_domain: str = "cluster.local"
    trust_domain: str = "cluster.local"
    control_plane_ns: str = "linkerd"
    default_opaque_ports: PortRanges = DEFAULT_OPAQUE_PORTS
    proxy_inbound_port: int = DEFAULT_PROXY_INBOUND_PORT

    def identity(self, service_account: str, namespace: str) -> str:
        """The TLS identity of a meshed workload running as ``service_account``."""
        return (
            f"{service_account}.{namespace}.serviceaccount.identity."
            f"{self.control_plane_ns}.{self.trust_domain}"
        )
