"""Inbound policies as protobuf messages (``isthmus.policy.v1``).

Pure one-way translation from the core's types; nothing else builds policy
messages.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from mesh.policy.model import (
    Authentication,
    Authorization,
    InboundServer,
    Protocol,
    TlsAuthenticated,
)
from mesh.proto import inbound_pb2 as pb

__all__ = ["authz_message", "server_message"]


def _authn(authentication: Authentication) -> pb.Authn:
    if isinstance(authentication, TlsAuthenticated):
        return pb.Authn(
            tls_authenticated=pb.Authn.PermitTls(
                identities=list(authentication.identities),
                suffixes=list(authentication.suffixes),
            )
        )
    return pb.Authn(unauthenticated=pb.Authn.PermitUnauthenticated())


def _network(net: str, excepted: tuple[str, ...]) -> pb.Network:
    message = pb.Network(net=net)
    # ``except`` is a Python keyword: the field is reachable only by name.
    getattr(message, "except").extend(excepted)
    return message


def authz_message(authorization: Authorization) -> pb.Authz:
    """The ``Authz`` message for one authorization."""
    return pb.Authz(
        networks=[_network(n.net, n.excepted) for n in authorization.networks],
        authentication=_authn(authorization.authentication),
        labels=authorization.ref.labels(),
    )


def _protocol(server: InboundServer) -> pb.ProxyProtocol:
    if server.protocol is Protocol.OPAQUE:
        return pb.ProxyProtocol(opaque=pb.ProxyProtocol.Opaque())
    if server.protocol is Protocol.HTTP1:
        return pb.ProxyProtocol(http1=pb.ProxyProtocol.Http1())
    timeout = Duration()
    timeout.FromNanoseconds(round(server.detect_timeout * 1e9))
    return pb.ProxyProtocol(detect=pb.ProxyProtocol.Detect(timeout=timeout))


def server_message(server: InboundServer) -> pb.Server:
    """The ``Server`` message for one port's policy."""
    return pb.Server(
        protocol=_protocol(server),
        authorizations=[authz_message(a) for a in server.authorizations],
        labels=server.ref.labels(),
        probe_paths=list(server.probe_paths),
    )
