"""HTTP/1.x messages on the wire, sans I/O: llhttp (httptools) parsing, and serialising.

A ``MessageReader`` turns the bytes of one direction of a connection into
events: ``Head`` (request or response line and headers, names lower-cased,
values stripped), ``Body`` (payload bytes, de-chunked), ``End`` (with trailers)
and ``Closed`` (the peer closed between messages). Rules:
- Every message the bytes hold is parsed at once (pipelining); the session
  decides when to act on each event.
- A head larger than ``max_head`` bytes, malformed syntax, or the peer closing
  mid-message raises ``WireError`` (with the status a server would answer).
- A response without Content-Length or chunked framing runs until the peer
  closes; ``skip_body`` marks the response to a HEAD request (no body, whatever
  its headers say). A 101 response is reported as a head with ``upgrade``.
- Serialising: ``head_bytes`` writes a start line and headers as given;
  ``chunk`` and ``last_chunk`` frame chunked bodies.
"""

from __future__ import annotations

import httptools

__all__ = [
    "Body",
    "Closed",
    "End",
    "Head",
    "MessageReader",
    "WireError",
    "chunk",
    "head_bytes",
    "last_chunk",
]

Header = tuple[bytes, bytes]


class WireError(Exception):
    """The peer broke HTTP/1 framing; ``status`` is what a server answers (400, 431)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Head:
    """A request or response head (``method``/``target`` or ``status``/``reason``)."""

    __slots__ = (
        "chunked",
        "has_host",
        "has_length",
        "headers",
        "keep_alive",
        "method",
        "reason",
        "status",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        headers: list[Header],
        version: str,
        keep_alive: bool,
        *,
        method: str = "",
        target: bytes = b"",
        status: int = 0,
        reason: bytes = b"",
    ) -> None:
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.method = method
        self.target = target
        self.status = status
        self.reason = reason
        self.chunked = False
        self.has_length = False
        self.has_host = False
        self.upgrade = False


class Body:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class End:
    __slots__ = ("trailers",)

    def __init__(self, trailers: list[Header]) -> None:
        self.trailers = trailers


class Closed:
    __slots__ = ()


Event = Head | Body | End | Closed
CLOSED = Closed()


class _SkipBody(Exception):
    """Raised inside the parser to stop after a body-less response's head."""


class MessageReader:
    """Parses one direction of a connection (see the module docstring)."""

    __slots__ = (
        "_framed",
        "_head_bytes",
        "_headers",
        "_parser",
        "_reason",
        "_size",
        "_stopped",
        "_target",
        "_trailers",
        "events",
        "head_done",
        "in_message",
        "max_head",
        "response",
        "skip_body",
    )

    def __init__(self, *, response: bool, max_head: int) -> None:
        self.response = response
        self.max_head = max_head
        self.events: list[Event] = []
        self.skip_body = False
        """The next response answers a HEAD request: it has no body."""
        self._stopped: Exception | None = None
        """What a callback raised to stop the parser."""
        self._new_parser()

    def _new_parser(self) -> None:
        parser: httptools.HttpResponseParser | httptools.HttpRequestParser = (
            httptools.HttpResponseParser(self)
            if self.response
            else httptools.HttpRequestParser(self)
        )
        parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._parser = parser
        self.in_message = False
        self.head_done = False
        self._head_bytes = 0
        self._headers: list[Header] = []
        self._trailers: list[Header] = []
        self._target = b""
        self._reason = b""
        self._size = 0
        self._framed = True

    # --- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self.head_done = False
        self._headers = []
        self._trailers = []
        self._target = b""
        self._reason = b""
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._size += len(url)

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            self._trailers.append((name.lower(), value.strip()))
            return
        self._size += len(name) + len(value) + 4
        self._headers.append((name.lower(), value.strip()))

    def on_headers_complete(self) -> None:
        parser = self._parser
        if self._size + len(self._reason) + 16 > self.max_head:
            self._stopped = WireError("head too large", 431)
            raise self._stopped
        self.head_done = True
        headers = self._headers
        version = parser.get_http_version()
        keep_alive = parser.should_keep_alive()
        if self.response:
            status = parser.get_status_code()  # type: ignore[union-attr]
            head = Head(headers, version, keep_alive, status=status, reason=self._reason)
        else:
            method = parser.get_method().decode("ascii")  # type: ignore[union-attr]
            head = Head(headers, version, keep_alive, method=method, target=self._target)
        for name, value in headers:
            if name == b"content-length":
                head.has_length = True
            elif name == b"host":
                head.has_host = True
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                head.chunked = True
        self._framed = head.has_length or head.chunked
        self.events.append(head)
        if self.response and self.skip_body and head.status >= 200:
            self.events.append(End([]))
            self.in_message = False
            self._stopped = _SkipBody()
            raise self._stopped

    def on_body(self, data: bytes) -> None:
        self.events.append(Body(data))

    def on_message_complete(self) -> None:
        self.events.append(End(self._trailers))
        self.in_message = False
        self.head_done = False
        self._head_bytes = 0

    # --- feeding -------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Events from ``data`` (``b""``: the peer closed); raises ``WireError``."""
        events: list[Event] = []
        self.events = events
        if not data:
            self._eof()
            return events
        if not self.head_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._upgraded(data, int(e.args[0]) if e.args else len(data))
        except httptools.HttpParserCallbackError as e:
            # why a callback stopped the parser (not the exception's context: compiled, it has none)
            stopped, self._stopped = self._stopped, None
            if isinstance(stopped, _SkipBody):
                self._new_parser()
                self.events = events
            elif isinstance(stopped, WireError):
                raise stopped from None
            else:
                raise WireError(str(e)) from e
        except httptools.HttpParserError as e:
            raise WireError(str(e) or type(e).__name__) from None
        if self.in_message and not self.head_done:
            if self._head_bytes > self.max_head:
                raise WireError("head too large", 431)
        else:
            self._head_bytes = 0
        return events

    def _upgraded(self, data: bytes, offset: int) -> None:
        events = self.events
        if self.response:
            for event in events:
                if isinstance(event, Head) and event.status == 101:
                    event.upgrade = True
            return
        # a request asking to upgrade: the proxy does not upgrade (the header is hop-by-hop),
        # so whatever follows is parsed as the next request
        self._new_parser()
        self.events = events
        rest = data[offset:]
        if rest:
            events.extend(self.feed(rest))
            self.events = events

    def _eof(self) -> None:
        if not self.in_message:
            self.events.append(CLOSED)
            return
        if self.response and self.head_done and not self._framed:
            self.events.append(End([]))
            self.in_message = False
            self.head_done = False
            return
        raise WireError("connection closed mid-message")


def head_bytes(start_line: bytes, headers: list[Header] | tuple[Header, ...]) -> bytes:
    """A message head: ``start_line`` then ``headers``, each ``name: value``."""
    parts = [start_line, b"\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def last_chunk(trailers: list[Header] | tuple[Header, ...] = ()) -> bytes:
    """The end of a chunked body, with ``trailers``."""
    return head_bytes(b"0", trailers)
