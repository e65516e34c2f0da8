"""The transport header: how an opaque TCP connection through a gateway names its target.

An HTTP request through the multicluster gateway names its target in its
authority; an opaque TCP stream has none. So a proxy that sends an opaque
connection to a gateway endpoint (one discovery gave an ``authority_override``,
reached over mTLS) first writes, inside TLS, one header naming the remote
service; the gateway reads it, applies the same routing rules as to an HTTP
authority, then splices the rest of the stream to that service. Linkerd's
proxies do the same with their own framing; this one is Isthmus's:

    MAGIC (18 bytes: NUL "isthmus-opaque/1" NUL) | length (2 bytes, big-endian) | target

``target`` is ``<host>:<port>`` in ASCII, 1..``MAX_TARGET`` bytes. Rules:

- the magic begins with a NUL byte, which no HTTP/1 request (nor TLS record)
  begins with, so the gateway tells a header from an HTTP request by the first
  byte and never mistakes one for the other;
- a stream that begins with part of the magic and then differs, a length of
  0 or over ``MAX_TARGET``, or a target that is not printable ASCII is
  malformed (``ValueError``): the gateway closes the connection;
- whatever follows the header is the stream's first bytes (``Header.rest``).

Pure: ``encode`` and ``HeaderReader`` (fed bytes as they arrive).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["MAGIC", "MAX_TARGET", "Header", "HeaderReader", "NeedMore", "NotHeader", "encode"]

MAGIC = b"\x00isthmus-opaque/1\x00"
MAX_TARGET = 512
"""The longest target accepted (a DNS name is at most 253 bytes, plus ``:port``)."""

_LENGTH = struct.Struct("!H")


def encode(target: str) -> bytes:
    """The header naming ``target`` (``host:port``); ``ValueError`` if it cannot be one."""
    raw = target.encode("ascii")
    _check(raw)
    return MAGIC + _LENGTH.pack(len(raw)) + raw


def _check(raw: bytes) -> None:
    if not 0 < len(raw) <= MAX_TARGET:
        raise ValueError(f"transport header target of {len(raw)} bytes (1-{MAX_TARGET})")
    if not all(0x21 <= b < 0x7F for b in raw):
        raise ValueError(f"transport header target is not printable ASCII: {raw[:64]!r}")


@dataclass(frozen=True, slots=True)
class NeedMore:
    """Not enough bytes yet to tell."""


@dataclass(frozen=True, slots=True)
class NotHeader:
    """The stream does not begin with a header; ``data`` is everything read so far."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Header:
    """A whole header: its ``target`` and the stream's bytes after it."""

    target: str
    rest: bytes


class HeaderReader:
    """Reads a transport header from the start of a stream, bytes as they arrive."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> NeedMore | NotHeader | Header:
        """The outcome after ``data``; ``b""`` is the end of the stream.

        Raises ``ValueError`` for a malformed header (see the module docstring).
        """
        self._buffer += data
        buffer = self._buffer
        if not buffer:
            return NotHeader(b"")  # the stream ended before its first byte
        if buffer[:1] != MAGIC[:1]:
            return NotHeader(buffer)
        head = buffer[: len(MAGIC)]
        if not MAGIC.startswith(head):
            raise ValueError("a stream starting with NUL is not a transport header")
        needed = len(MAGIC) + _LENGTH.size
        if len(buffer) >= needed:
            (length,) = _LENGTH.unpack_from(buffer, len(MAGIC))
            if not 0 < length <= MAX_TARGET:
                raise ValueError(f"transport header target of {length} bytes (1-{MAX_TARGET})")
            needed += length
        if len(buffer) < needed:
            if not data:
                raise ValueError("the stream ended inside a transport header")
            return NeedMore()
        raw = buffer[len(MAGIC) + _LENGTH.size : needed]
        _check(raw)
        return Header(raw.decode("ascii"), buffer[needed:])
