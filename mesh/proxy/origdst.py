"""Where an intercepted connection was going: ``SO_ORIGINAL_DST`` after an iptables REDIRECT.

``parse_sockaddr`` is pure (tested with bytes); ``original_destination`` asks
the kernel. Listeners take an ``OriginalDestination`` function so tests can
name the target explicitly instead of needing iptables.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Protocol

from mesh.proxy.discovery import Address

__all__ = [
    "SO_ORIGINAL_DST",
    "OriginalDestination",
    "SocketLike",
    "fixed_destination",
    "original_destination",
    "parse_sockaddr",
]

SO_ORIGINAL_DST = 80
"""``SO_ORIGINAL_DST`` (``<linux/netfilter_ipv4.h>``), also ``IP6T_SO_ORIGINAL_DST``."""
_SOL_IPV6 = 41


class SocketLike(Protocol):
    """What ``original_destination`` needs of a socket (asyncio hands out wrappers)."""

    @property
    def family(self) -> int: ...

    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


OriginalDestination = Callable[[SocketLike], Address]
"""How a listener learns an accepted connection's original destination."""


def parse_sockaddr(raw: bytes) -> Address:
    """Decode a ``sockaddr_in`` or ``sockaddr_in6`` as returned by ``getsockopt``."""
    if len(raw) < 8:
        raise ValueError(f"sockaddr too short: {len(raw)} bytes")
    (family,) = struct.unpack("=H", raw[:2])
    (port,) = struct.unpack("!H", raw[2:4])
    if family == socket.AF_INET:
        return Address(socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
    if family == socket.AF_INET6 and len(raw) >= 24:
        return Address(socket.inet_ntop(socket.AF_INET6, raw[8:24]), port)
    raise ValueError(f"unsupported address family {family}")


def original_destination(sock: SocketLike) -> Address:
    """The address the client connected to before iptables redirected it here.

    Raises ``OSError`` when the connection was not redirected.
    """
    if sock.family == socket.AF_INET6:
        raw = sock.getsockopt(_SOL_IPV6, SO_ORIGINAL_DST, 28)
    else:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    return parse_sockaddr(raw)


def fixed_destination(address: Address) -> OriginalDestination:
    """An ``OriginalDestination`` that always answers ``address`` (tests, direct modes)."""

    def destination(sock: SocketLike) -> Address:
        return address

    return destination
