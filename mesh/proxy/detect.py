"""Protocol detection from the first bytes of a connection, sans I/O.

Rules:
- A ``Detector`` is fed the bytes a client sends, as they arrive, with the time
  ``now`` (seconds on a monotonic clock). It answers ``NeedMore(deadline)`` until
  it knows, then one final answer: ``Tls`` (a ClientHello, with SNI and ALPN),
  ``Http1`` (a request line), ``Http2`` (the prior-knowledge preface) or
  ``Opaque`` (anything else, end of stream, too much data, or the deadline passed).
- Detection never consumes bytes: the caller keeps ``detector.buffered`` and
  replays it to whatever handles the connection next.
- No sleeping: the caller waits for more bytes until ``deadline`` and then calls
  ``expire(now)``. As in Linkerd, a client that stays silent past the detection
  timeout is treated as opaque TCP.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_DETECT_TIMEOUT",
    "MAX_HTTP_LINE",
    "MAX_TLS_HELLO",
    "Detected",
    "Detector",
    "Http1",
    "Http2",
    "NeedMore",
    "Opaque",
    "Outcome",
    "Tls",
    "detect",
    "parse_client_hello",
]

DEFAULT_DETECT_TIMEOUT = 10.0
"""Seconds a client may take to send enough bytes to be recognised (Linkerd's default)."""
MAX_HTTP_LINE = 16 * 1024
"""A request line longer than this is not HTTP for detection's purposes."""
MAX_TLS_HELLO = 64 * 1024
"""A ClientHello (all its records) larger than this is treated as opaque."""

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HANDSHAKE = 22
_CLIENT_HELLO = 1
_EXT_SNI = 0
_EXT_ALPN = 16
_MAX_RECORD = 2**14 + 2048


@dataclass(frozen=True, slots=True)
class NeedMore:
    """Not enough bytes yet; give up at ``deadline`` by calling ``Detector.expire``."""

    deadline: float


@dataclass(frozen=True, slots=True)
class Tls:
    """A TLS ClientHello: the server name asked for and the offered ALPN protocols."""

    sni: str | None
    alpn: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Http1:
    """An HTTP/1.x request line."""

    method: str
    target: str
    version: str


@dataclass(frozen=True, slots=True)
class Http2:
    """The HTTP/2 prior-knowledge connection preface."""


@dataclass(frozen=True, slots=True)
class Opaque:
    """Not a protocol the proxy understands; ``reason`` says why (for logs)."""

    reason: str


Detected = Tls | Http1 | Http2 | Opaque
Outcome = NeedMore | Detected


class _Short(Exception):
    """More bytes are needed."""


class _Malformed(Exception):
    """The bytes cannot be what was expected."""


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise _Short
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def _handshake_bytes(data: bytes) -> bytes:
    """Concatenate the handshake fragments of the TLS records in ``data``.

    Raises ``_Short`` when the ClientHello is not complete yet.
    """
    records = _Reader(data)
    handshake = bytearray()
    while True:
        if records.remaining == 0:
            raise _Short
        content_type = records.uint(1)
        major = records.uint(1)
        records.uint(1)
        length = records.uint(2)
        if content_type != _HANDSHAKE or major != 3 or length == 0 or length > _MAX_RECORD:
            raise _Malformed
        handshake += records.take(length)
        if len(handshake) >= 4:
            if handshake[0] != _CLIENT_HELLO:
                raise _Malformed
            needed = 4 + int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= needed:
                return bytes(handshake[4:needed])


def _extensions(body: _Reader) -> Tls:
    body.take(2 + 32)  # legacy_version, random
    body.vector(1)  # legacy_session_id
    body.vector(2)  # cipher_suites
    body.vector(1)  # legacy_compression_methods
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    if body.remaining == 0:
        return Tls(None)
    extensions = _Reader(body.vector(2))
    while extensions.remaining:
        kind = extensions.uint(2)
        ext = _Reader(extensions.vector(2))
        if kind == _EXT_SNI:
            names = _Reader(ext.vector(2))
            while names.remaining:
                name_type = names.uint(1)
                name = names.vector(2)
                if name_type == 0 and sni is None:
                    sni = name.decode("ascii")
        elif kind == _EXT_ALPN:
            protocols = _Reader(ext.vector(2))
            found = []
            while protocols.remaining:
                found.append(protocols.vector(1).decode("ascii", "replace"))
            alpn = tuple(found)
    return Tls(sni, alpn)


def parse_client_hello(data: bytes) -> Tls | None:
    """The SNI and ALPN of the ClientHello at the start of ``data``, or ``None`` if incomplete.

    Raises ``ValueError`` if ``data`` does not start with a TLS ClientHello.
    """
    try:
        body = _handshake_bytes(data)
    except _Short:
        return None
    except _Malformed:
        raise ValueError("not a TLS ClientHello") from None
    try:
        return _extensions(_Reader(body))
    except (_Short, _Malformed, UnicodeDecodeError):
        raise ValueError("malformed TLS ClientHello") from None


def _request_line(data: bytes) -> Http1 | Http2 | Opaque | None:
    """Classify a possible HTTP request line; ``None`` means it may still become one."""
    end = data.find(b"\n")
    line = data if end < 0 else data[:end].rstrip(b"\r")
    space = line.find(b" ")
    method = line if space < 0 else line[:space]
    if not method and line:
        return Opaque("not an HTTP request line")
    if any(c not in _TOKEN for c in method):
        return Opaque("not an HTTP request line")
    if end < 0:
        if len(data) > MAX_HTTP_LINE:
            return Opaque("request line too long")
        return None
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[1] or any(c < 0x21 or c == 0x7F for c in parts[1]):
        return Opaque("not an HTTP request line")
    version = parts[2]
    if len(version) != 8 or not version.startswith(b"HTTP/") or version[6:7] != b".":
        return Opaque("not an HTTP request line")
    if not (version[5:6].isdigit() and version[7:8].isdigit()):
        return Opaque("not an HTTP request line")
    if version == b"HTTP/2.0" and method == b"PRI":
        if len(data) < len(_H2_PREFACE):
            return None if _H2_PREFACE.startswith(data) else Opaque("bad HTTP/2 preface")
        return Http2() if data.startswith(_H2_PREFACE) else Opaque("bad HTTP/2 preface")
    if version[5:6] != b"1":
        return Opaque(f"unsupported HTTP version {version.decode()}")
    return Http1(method.decode(), parts[1].decode("latin-1"), version[5:].decode())


def detect(data: bytes) -> Detected | None:
    """What protocol ``data`` (the first bytes of a connection) speaks; ``None`` if unsure yet."""
    if not data:
        return None
    if data[0] == _HANDSHAKE:
        if len(data) > MAX_TLS_HELLO:
            return Opaque("TLS ClientHello too large")
        try:
            return parse_client_hello(data)
        except ValueError as e:
            return Opaque(str(e))
    return _request_line(data)


class Detector:
    """Accumulates a connection's first bytes until its protocol is known."""

    __slots__ = ("_buffer", "_result", "deadline", "eof")

    def __init__(self, now: float, timeout: float = DEFAULT_DETECT_TIMEOUT) -> None:
        self.deadline = now + timeout
        self._buffer = bytearray()
        self._result: Detected | None = None
        self.eof = False
        """Whether the client closed its side during detection."""

    @property
    def abandoned(self) -> bool:
        """Whether the client closed without sending a byte (nothing to forward)."""
        return self.eof and not self._buffer

    @property
    def buffered(self) -> bytes:
        """Every byte fed so far; hand these on, detection consumed nothing."""
        return bytes(self._buffer)

    @property
    def result(self) -> Detected | None:
        """The final answer, once there is one."""
        return self._result

    def feed(self, data: bytes, now: float) -> Outcome:
        """Add bytes received at ``now``; ``b""`` means the client closed its side."""
        if self._result is not None:
            return self._result
        if not data:
            self.eof = True
            self._result = detect(bytes(self._buffer)) or Opaque("end of stream")
            return self._result
        self._buffer += data
        if now >= self.deadline:
            return self.expire(now)
        found = detect(bytes(self._buffer))
        if found is None:
            return NeedMore(self.deadline)
        self._result = found
        return found

    def expire(self, now: float) -> Outcome:
        """Call when the deadline passes without an answer: the connection is opaque."""
        if self._result is not None:
            return self._result
        if now < self.deadline:
            return NeedMore(self.deadline)
        self._result = detect(bytes(self._buffer)) or Opaque("detection timed out")
        return self._result
