"""Discovery answers as protobuf messages (``isthmus.destination.v1``).

Pure one-way translation from the core's types; nothing else builds
destination messages.
"""

from __future__ import annotations

from mesh.destination.endpoints import Add, Address, NoEndpoints, Remove, Update, WeightedEndpoint
from mesh.destination.profiles import Profile
from mesh.destination.split_objects import PathKind, RouteMatch
from mesh.destination.splits import RouteEntry, WeightedDst
from mesh.proto import destination_pb2 as pb

__all__ = ["profile_message", "route_message", "update_message", "weighted_addr"]

_PATH_KINDS = {
    PathKind.PREFIX: pb.HttpRouteMatch.PATH_PREFIX,
    PathKind.EXACT: pb.HttpRouteMatch.EXACT,
    PathKind.REGEX: pb.HttpRouteMatch.REGULAR_EXPRESSION,
}


def _tcp(address: Address) -> pb.TcpAddress:
    return pb.TcpAddress(ip=address.ip, port=address.port)


def weighted_addr(endpoint: WeightedEndpoint) -> pb.WeightedAddr:
    """The ``WeightedAddr`` for one endpoint."""
    message = pb.WeightedAddr(
        addr=_tcp(endpoint.address),
        weight=endpoint.weight,
        metric_labels=dict(endpoint.labels),
    )
    if endpoint.identity is not None:
        message.tls_identity.dns_name = endpoint.identity
    if endpoint.opaque:
        message.protocol_hint.opaque.SetInParent()
    if endpoint.opaque_transport_port is not None:
        message.protocol_hint.opaque_transport.inbound_port = endpoint.opaque_transport_port
    if endpoint.authority_override is not None:
        message.authority_override.authority_override = endpoint.authority_override
    return message


def update_message(update: Update) -> pb.Update:
    """The ``Update`` message for one core update."""
    if isinstance(update, Add):
        return pb.Update(
            add=pb.WeightedAddrSet(
                addrs=[weighted_addr(e) for e in update.endpoints],
                metric_labels=dict(update.labels),
            )
        )
    if isinstance(update, Remove):
        return pb.Update(remove=pb.AddrSet(addrs=[_tcp(a) for a in update.addresses]))
    assert isinstance(update, NoEndpoints)
    return pb.Update(no_endpoints=pb.NoEndpoints(exists=update.exists))


def _dsts(dsts: tuple[WeightedDst, ...]) -> list[pb.WeightedDst]:
    return [pb.WeightedDst(authority=d.authority, weight=d.weight) for d in dsts]


def _match(match: RouteMatch) -> pb.HttpRouteMatch:
    return pb.HttpRouteMatch(
        path_kind=_PATH_KINDS[match.path_kind],
        path=match.path,
        headers=[
            pb.HttpHeaderMatch(name=h.name, value=h.value, regex=h.regex) for h in match.headers
        ],
        method=match.method,
    )


def route_message(entry: RouteEntry) -> pb.HttpRouteRule:
    """The ``HttpRouteRule`` message for one route entry (one match, its backends)."""
    return pb.HttpRouteRule(matches=[_match(entry.match)], backends=_dsts(entry.backends))


def profile_message(profile: Profile) -> pb.DestinationProfile:
    """The ``DestinationProfile`` message for a profile."""
    message = pb.DestinationProfile(
        fully_qualified_name=profile.fully_qualified_name,
        opaque_protocol=profile.opaque,
        dst_overrides=_dsts(profile.dst_overrides),
        http_routes=[route_message(e) for e in profile.http_routes],
    )
    if profile.endpoint is not None:
        message.endpoint.CopyFrom(weighted_addr(profile.endpoint))
    return message
