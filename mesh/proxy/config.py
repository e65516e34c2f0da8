"""The proxy's settings: where it listens and every timeout it applies, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.proxy.admin import AdminLimits
from mesh.proxy.balancer import DEFAULT_DECAY, DEFAULT_RTT
from mesh.proxy.detect import DEFAULT_DETECT_TIMEOUT
from mesh.proxy.policy import DEFAULT_CLUSTER_NETWORKS, Network

__all__ = ["ProxyConfig", "Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """Every wait the proxy makes, in seconds (defaults follow Linkerd's)."""

    detect: float = DEFAULT_DETECT_TIMEOUT
    """A client must send enough bytes to recognise its protocol within this; else opaque."""
    handshake: float = 10.0
    """An inbound TLS handshake must finish within this."""
    connect: float = 1.0
    """Connecting (and the TLS handshake) to an upstream endpoint or the app."""
    failfast: float = 3.0
    """How long a request waits for a usable endpoint before a 503."""
    connect_backoff: float = 0.5
    """How long an endpoint that refused a connection is skipped by the balancer."""
    pool_idle: float = 10.0
    """An idle pooled upstream connection is closed after this."""
    request_head: float = 10.0
    """Once a client has sent a request's first bytes (or after detection), the whole
    head must arrive within this; else the connection is closed (slowloris)."""
    http_idle: float = 60.0
    """An HTTP connection with no request in progress is closed after this."""
    response: float | None = None
    """How long a sent request may wait for bytes of its response (504 if none came
    before the head); ``None``: no limit, as in Linkerd without a route timeout."""


@dataclass(frozen=True)
class ProxyConfig:
    """Where the proxy listens and how it behaves."""

    inbound_host: str = "0.0.0.0"
    inbound_port: int = 4143
    outbound_host: str = "127.0.0.1"
    outbound_port: int = 4140
    admin_host: str = "0.0.0.0"
    admin_port: int = 4191
    app_host: str = "127.0.0.1"
    """Where inbound traffic is delivered (port: the connection's original port)."""
    cluster_networks: tuple[Network, ...] = DEFAULT_CLUSTER_NETWORKS
    timeouts: Timeouts = field(default_factory=Timeouts)
    ewma_decay: float = DEFAULT_DECAY
    ewma_default_rtt: float = DEFAULT_RTT
    pool_max_idle: int = 64
    """Idle upstream connections kept per endpoint."""
    tap_capacity: int = 1000
    """Events buffered per tap subscriber before dropping."""
    admin: AdminLimits = field(default_factory=AdminLimits)
    """What one admin-port connection may cost (time and bytes)."""
    gateway_suffixes: tuple[str, ...] = ()
    """Gateway mode: direct inbound connections are routed to services under these
    suffixes (``svc.<cluster domain>``); empty: not a gateway."""
    tap_host: str = "0.0.0.0"
    tap_port: int = 4190
    tap_identities: tuple[str, ...] = ()
    """Who may tap (over mTLS on the tap port); none: the tap port is not served."""
