"""Gateway mode's rules: who may use the multicluster gateway and where each request may go.

A proxy with gateway suffixes (``LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES``,
``svc.<cluster domain>.``) is a multicluster gateway: connections made to its
inbound port itself (not redirected there from an application port) are
gateway traffic. The rules, after Linkerd's gateway:

- a connection is admitted only if it is TLS addressed (SNI) to the gateway's
  own identity and the client presented a certificate under the trust
  anchors; anything else (plaintext, other TLS, TLS without a client
  certificate) is closed without a byte of answer;
- the port's inbound policy (the ``Server`` selecting the gateway's port 4143,
  else the pod's default policy) is applied to the client's identity and
  address: per request for HTTP (403 when denied), once for an opaque stream
  (closed when denied);
- inside, HTTP/1 is served, and opaque TCP that begins with a transport header
  (``transport_header``) naming its target; other streams are closed;
- each request is routed by its authority, each opaque stream by its header's
  target, which must name a service (or one hostname of a headless service)
  under a gateway suffix with an explicit port,
  ``[<host>.]<svc>.<ns>.svc.<domain>:<port>``: no open proxy. For HTTP a missing
  or malformed authority is a 400, a name outside the suffixes a 403, both with
  ``l5d-proxy-error``; an opaque stream with such a target is closed;
- a request already forwarded by this gateway (its ``forwarded`` header names
  this gateway ``by``) is a loop: 502;
- forwarded requests carry ``forwarded: by=<gateway>;for=<client>`` and no
  client-supplied ``l5d-client-id``; the target's proxy sees the gateway's
  identity.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mesh.proxy.discovery import Address
from mesh.proxy.http1 import Header, LocalResponse, RequestHead

__all__ = [
    "FORWARDED_HEADER",
    "GatewaySettings",
    "Refusal",
    "admit_client",
    "admit_hello",
    "forwarded_header",
    "route",
    "target",
]

FORWARDED_HEADER = b"forwarded"


class Refusal(StrEnum):
    """Why a gateway connection was closed (a log line and a metric label)."""

    PLAINTEXT = "plaintext"
    """Not TLS at all (an unmeshed client, CONF-20)."""
    WRONG_SERVER_NAME = "wrong_server_name"
    """TLS, but addressed to another identity (nothing this gateway can terminate)."""
    HANDSHAKE_FAILED = "handshake_failed"
    """The TLS handshake failed (e.g. a client certificate not under the trust anchors)."""
    NO_CLIENT_IDENTITY = "no_client_identity"
    """TLS without a client certificate: the gateway requires mutual TLS."""
    NOT_HTTP = "not_http"
    """Mutual TLS, but neither HTTP/1 nor a transport header inside."""
    BAD_TARGET = "bad_target"
    """An opaque stream whose transport header is malformed or names no local service."""
    UNAUTHORIZED = "unauthorized"
    """The gateway port's policy does not admit the client (opaque streams)."""


@dataclass(frozen=True)
class GatewaySettings:
    """Names the gateway routes to: services under these suffixes (no trailing dot)."""

    suffixes: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> GatewaySettings:
        """``svc.east.example.,svc.other.`` → normalised suffixes; ``ValueError`` on ``.``."""
        suffixes = tuple(s.strip().strip(".").lower() for s in text.split(",") if s.strip())
        if any(not s for s in suffixes):
            raise ValueError(
                "a gateway suffix must name a domain (the root would be an open proxy)"
            )
        return cls(suffixes)

    @property
    def enabled(self) -> bool:
        return bool(self.suffixes)

    def allows(self, host: str) -> bool:
        """Whether ``host`` is ``[<hostname>.]<svc>.<ns>.<suffix>`` for one of the suffixes.

        The ``<hostname>.`` form names one endpoint of a headless service (a StatefulSet
        pod mirrored per host, CONF-29).
        """
        name = host.rstrip(".").lower()
        for suffix in self.suffixes:
            if name.endswith("." + suffix):
                labels = name.removesuffix("." + suffix).split(".")
                if len(labels) in (2, 3) and all(labels):
                    return True
        return False


def admit_hello(*, tls: bool, server_name: str | None, local_identity: str) -> Refusal | None:
    """Why a direct connection that opened so (``tls``: with a ClientHello) is refused, if it is."""
    if not tls:
        return Refusal.PLAINTEXT
    if server_name != local_identity:
        return Refusal.WRONG_SERVER_NAME
    return None


def admit_client(client_identity: str | None) -> Refusal | None:
    """Why a completed handshake whose verified client identity is this is refused, if it is."""
    return None if client_identity else Refusal.NO_CLIENT_IDENTITY


def _split_authority(authority: str) -> tuple[str, int] | None:
    host, sep, port = authority.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") or ":" in host:
        return None
    return host, int(port)


def _loops(head: RequestHead, local_identity: str) -> bool:
    needle = f"by={local_identity}".lower()
    for name, value in head.headers:
        if name == FORWARDED_HEADER and needle in value.decode("latin-1").lower().replace('"', ""):
            return True
    return False


def target(authority: str | None, settings: GatewaySettings) -> Address | LocalResponse:
    """The local service ``authority`` names (``host:port``), or why it names none."""
    split = _split_authority(authority) if authority else None
    if split is None:
        return LocalResponse(
            400, f"gateway: the request's authority {authority!r} is not <service name>:<port>"
        )
    host, port = split
    if not settings.allows(host):
        return LocalResponse(
            403,
            f"gateway: {host} is not a service of this cluster "
            f"(<svc>.<ns>.{' or '.join(settings.suffixes)})",
        )
    return Address(host.rstrip(".").lower(), port)


def route(
    head: RequestHead, settings: GatewaySettings, local_identity: str
) -> Address | LocalResponse:
    """Where the gateway sends ``head`` (a service name and port), or its local answer."""
    decision = target(head.authority, settings)
    if isinstance(decision, LocalResponse):
        return decision
    if _loops(head, local_identity):
        return LocalResponse(502, "gateway loop detected")
    return decision


def forwarded_header(local_identity: str, client_identity: str) -> Header:
    """The ``forwarded`` header the gateway adds (RFC 7239; identities as tokens)."""
    return (FORWARDED_HEADER, f'by="{local_identity}";for="{client_identity}"'.encode())
