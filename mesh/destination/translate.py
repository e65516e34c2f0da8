"""Discovery answers as protobuf messages (``isthmus.destination.v1``).

Pure one-way translation from the core's types; nothing else builds
destination messages.
"""

from __future__ import annotations

from mesh.destination.endpoints import Add, Address, NoEndpoints, Remove, Update, WeightedEndpoint
from mesh.destination.profiles import Profile
from mesh.proto import destination_pb2 as pb

__all__ = ["profile_message", "update_message", "weighted_addr"]


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


def profile_message(profile: Profile) -> pb.DestinationProfile:
    """The ``DestinationProfile`` message for a profile."""
    message = pb.DestinationProfile(
        fully_qualified_name=profile.fully_qualified_name,
        opaque_protocol=profile.opaque,
        dst_overrides=[
            pb.WeightedDst(authority=d.authority, weight=d.weight) for d in profile.dst_overrides
        ],
    )
    if profile.endpoint is not None:
        message.endpoint.CopyFrom(weighted_addr(profile.endpoint))
    return message
