"""SPDY/3.1 as a kubelet speaks it to the API server: framing and a server session (sans-IO).

Kubernetes streams (exec, attach, port-forward) ride on SPDY/3.1 after an HTTP/1.1
``Upgrade: SPDY/3.1``. This module turns received bytes into :class:`Event` values and
queues the bytes to send; the caller owns the socket.

Rules:
- Only the server side is implemented: the client (the API server) opens every
  stream with SYN_STREAM (odd ids); the session never opens one.
- Header blocks are zlib-compressed with the SPDY/3 dictionary, one compression
  context per direction for the whole connection (each block sync-flushed).
- Header names arrive lower-case; values holding several entries are NUL-separated.
- Flow control is neither enforced nor signalled: the Go peer (moby/spdystream)
  ignores WINDOW_UPDATE and sends without waiting for window.
- PINGs from the peer are answered at once; a malformed frame raises
  :class:`ProtocolError` (the caller then drops the connection).
- No asyncio here: :class:`SpdyServerSession` is a pure state machine.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9

RST_PROTOCOL_ERROR = 1
RST_INVALID_STREAM = 2
RST_REFUSED_STREAM = 3
RST_CANCEL = 5

#: a data frame carries at most this many bytes (the 24-bit length allows more).
MAX_DATA_FRAME = 16 * 1024
#: control frames beyond this size are refused (a header block of a few fields).
MAX_CONTROL_FRAME = 1024 * 1024


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (section 2.6.10.1 of the draft)."""
    words = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
    ]
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive"]
    words += ["origin"]
    head = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    codes = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    )
    reasons = (
        "203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found"
        "500 Internal Server Error501 Not Implemented503 Service Unavailable"
    )
    dates = (
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    )
    types = (
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,"
        "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return head + (codes + reasons + dates + types).encode()


DICTIONARY = _dictionary()

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1."""


# -- events (what the peer did) ------------------------------------------------------


@dataclass(frozen=True)
class StreamOpened:
    stream_id: int
    headers: Headers
    fin: bool


@dataclass(frozen=True)
class StreamData:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StreamEnded:
    """The peer half-closed the stream (FIN): it sends nothing more on it."""

    stream_id: int


@dataclass(frozen=True)
class StreamReset:
    stream_id: int
    status: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int


Event = StreamOpened | StreamData | StreamEnded | StreamReset | GoAway


# -- header blocks ------------------------------------------------------------------


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block (names lower-cased, values NUL-joined)."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        out: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n].decode()
            pos += 4 + n
            (v,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4 : pos + 4 + v].decode()
            pos += 4 + v
            if len(name) != n or len(value.encode()) != v:
                raise ProtocolError("truncated header block")
            out.setdefault(name.lower(), []).extend(value.split("\x00"))
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"bad header block: {e}") from e
    return out


class HeaderCompressor:
    def __init__(self) -> None:
        self._z = zlib.compressobj(zdict=DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        raw = encode_header_block(headers)
        return self._z.compress(raw) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            raw = self._z.decompress(data)
        except zlib.error as e:
            raise ProtocolError(f"header block does not inflate: {e}") from e
        return decode_header_block(raw)


# -- frames -------------------------------------------------------------------------


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    head = struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload))
    return head + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


@dataclass
class _StreamState:
    local_closed: bool = False
    remote_closed: bool = False


@dataclass
class SpdyServerSession:
    """The server end of one SPDY/3.1 connection: ``receive`` bytes, ``pending`` bytes out."""

    _buf: bytearray = field(default_factory=bytearray)
    _out: bytearray = field(default_factory=bytearray)
    _inflate: HeaderDecompressor = field(default_factory=HeaderDecompressor)
    _deflate: HeaderCompressor = field(default_factory=HeaderCompressor)
    _streams: dict[int, _StreamState] = field(default_factory=dict)
    _last_stream: int = 0
    closed: bool = False

    # -- input ----------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Parse every complete frame in ``data`` (plus what was buffered)."""
        self._buf += data
        events: list[Event] = []
        while len(self._buf) >= 8:
            (length,) = struct.unpack_from(">I", self._buf, 4)
            length &= 0xFFFFFF
            if self._buf[0] & 0x80 and length > MAX_CONTROL_FRAME:
                raise ProtocolError(f"control frame of {length} bytes")
            if len(self._buf) < 8 + length:
                break
            frame = bytes(self._buf[: 8 + length])
            del self._buf[: 8 + length]
            events += self._frame(frame)
        return events

    def _frame(self, frame: bytes) -> list[Event]:
        first, second = struct.unpack_from(">II", frame, 0)
        flags, payload = second >> 24, frame[8:]
        if not first & 0x80000000:
            return self._data(first & 0x7FFFFFFF, flags, payload)
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, expected {VERSION}")
        try:
            return self._control(kind, flags, payload)
        except struct.error as e:
            raise ProtocolError(f"short control frame of type {kind}") from e

    def _data(self, stream_id: int, flags: int, payload: bytes) -> list[Event]:
        state = self._streams.get(stream_id)
        if state is None or state.remote_closed:
            self._out += control_frame(
                RST_STREAM, 0, struct.pack(">II", stream_id, RST_INVALID_STREAM)
            )
            return []
        events: list[Event] = []
        if payload:
            events.append(StreamData(stream_id, payload))
        if flags & FLAG_FIN:
            state.remote_closed = True
            events.append(StreamEnded(stream_id))
            self._forget_if_done(stream_id)
        return events

    def _control(self, kind: int, flags: int, payload: bytes) -> list[Event]:
        if kind == SYN_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            headers = self._inflate.decompress(payload[10:])
            if stream_id in self._streams or stream_id <= self._last_stream:
                raise ProtocolError(f"stream {stream_id} opened twice or out of order")
            self._last_stream = stream_id
            fin = bool(flags & FLAG_FIN)
            self._streams[stream_id] = _StreamState(
                local_closed=bool(flags & FLAG_UNIDIRECTIONAL), remote_closed=fin
            )
            return [StreamOpened(stream_id, headers, fin)]
        if kind == HEADERS:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            self._inflate.decompress(payload[4:])  # keep the zlib context in step
            if flags & FLAG_FIN and stream_id in self._streams:
                return self._data(stream_id, FLAG_FIN, b"")
            return []
        if kind == RST_STREAM:
            stream_id, status = struct.unpack_from(">II", payload, 0)
            stream_id &= 0x7FFFFFFF
            if self._streams.pop(stream_id, None) is None:
                return []
            return [StreamReset(stream_id, status)]
        if kind == PING:
            (ping_id,) = struct.unpack_from(">I", payload, 0)
            if ping_id % 2 == 1:  # the peer's ping: echo it
                self._out += control_frame(PING, 0, payload[:4])
            return []
        if kind == GOAWAY:
            (last,) = struct.unpack_from(">I", payload, 0)
            return [GoAway(last & 0x7FFFFFFF)]
        if kind in (SETTINGS, WINDOW_UPDATE, SYN_REPLY):
            return []
        return []  # unknown control frames are ignored, as the spec asks

    # -- output ---------------------------------------------------------------

    def reply(self, stream_id: int, headers: Headers | None = None) -> None:
        """Accept a stream the peer opened (SYN_REPLY)."""
        block = self._deflate.compress(headers or {})
        self._out += control_frame(SYN_REPLY, 0, struct.pack(">I", stream_id) + block)

    def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        """Queue ``data`` on a stream, split into frames; ``fin`` half-closes it."""
        state = self._streams.get(stream_id)
        if state is None or state.local_closed:
            return
        for i in range(0, len(data), MAX_DATA_FRAME):
            self._out += data_frame(stream_id, data[i : i + MAX_DATA_FRAME])
        if fin:
            self._out += data_frame(stream_id, b"", fin=True)
            state.local_closed = True
            self._forget_if_done(stream_id)

    def end(self, stream_id: int) -> None:
        self.send(stream_id, b"", fin=True)

    def reset(self, stream_id: int, status: int = RST_CANCEL) -> None:
        if self._streams.pop(stream_id, None) is not None:
            self._out += control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def refuse(self, stream_id: int, status: int = RST_REFUSED_STREAM) -> None:
        """Reset a stream the peer opened without replying to it."""
        self.reset(stream_id, status)

    def goaway(self) -> None:
        if not self.closed:
            self._out += control_frame(GOAWAY, 0, struct.pack(">II", self._last_stream, 0))
            self.closed = True

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def pending(self) -> bytes:
        """Bytes to write to the socket now (and forget)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _forget_if_done(self, stream_id: int) -> None:
        state = self._streams.get(stream_id)
        if state is not None and state.local_closed and state.remote_closed:
            del self._streams[stream_id]
