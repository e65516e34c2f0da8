"""The sidecar proxy: outbound 4140, inbound 4143, admin 4191, modelled on Linkerd's.

Sans-I/O cores (typed events in, typed commands or decisions out; no asyncio):
``detect`` (protocol detection), ``balancer`` (P2C over peak-EWMA), ``policy``
(inbound authorization), ``metrics`` / ``telemetry`` (Prometheus text with
Linkerd's names and labels), ``tap`` (live events), ``http1`` (HTTP/1.1
forwarding on llhttp, via ``h1wire``), ``exchange`` (what a request records), ``discovery`` and
``tls`` (the interfaces the control plane fills, and mTLS contexts and sessions).

The asyncio layer: ``server.Proxy`` binds the listeners and hands connections
to ``inbound`` / ``outbound`` / ``admin``, which use ``connection``, ``pool``,
``resolve`` and ``forwarding`` to move bytes.

The process: ``envconfig`` reads the ``LINKERD2_PROXY_*`` environment;
``identity_client``, ``discovery_client`` and ``policy_client`` speak the
control plane's gRPC APIs (retrying with ``backoff``); ``runtime`` wires them
to a ``Proxy``; ``__main__`` runs it (``isthmus component proxy``). ``init``
installs the pod's iptables redirection (``isthmus component proxy-init``).
``compiled`` loads the hot path compiled with mypyc when it is built for these
sources (first, before any other module of the package is imported).
"""

from mesh.proxy import compiled

compiled.use()


from mesh.proxy.config import ProxyConfig, Timeouts
from mesh.proxy.discovery import (
    Add,
    Address,
    Backend,
    Discovery,
    Endpoint,
    NoEndpoints,
    NotFound,
    Remove,
    Replace,
    Split,
    Update,
)
from mesh.proxy.origdst import OriginalDestination, fixed_destination, original_destination
from mesh.proxy.policy import (
    Authorization,
    DefaultPolicy,
    MeshTls,
    Network,
    PolicySource,
    ProxyProtocol,
    Server,
    StaticPolicy,
    Unauthenticated,
    default_server,
)
from mesh.proxy.server import Proxy
from mesh.proxy.tls import TlsCredentials, TlsStore

__all__ = [
    "Add",
    "Address",
    "Authorization",
    "Backend",
    "DefaultPolicy",
    "Discovery",
    "Endpoint",
    "MeshTls",
    "Network",
    "NoEndpoints",
    "NotFound",
    "OriginalDestination",
    "PolicySource",
    "Proxy",
    "ProxyConfig",
    "ProxyProtocol",
    "Remove",
    "Replace",
    "Server",
    "Split",
    "StaticPolicy",
    "Timeouts",
    "TlsCredentials",
    "TlsStore",
    "Unauthenticated",
    "Update",
    "default_server",
    "fixed_destination",
    "original_destination",
]
