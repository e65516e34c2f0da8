"""HTTP/1.1 forwarding, sans I/O, on the llhttp parser (``h1wire``).

An ``Http1Session`` is one downstream connection (the proxy acting as server)
and, while a request is in flight, one ``UpstreamConnection`` (the proxy acting
as client; it outlives the session in a pool). The driver feeds received bytes
in and executes the returned commands in order.

Per request:
1. Its head arrives: ``RouteRequest``. Nothing more is read (pipelined bytes stay
   buffered) until the driver calls ``forward`` or ``respond``.
2. ``forward``: the head goes upstream with hop-by-hop headers stripped, on
   inbound ``l5d-client-id`` set to the verified client identity (any
   client-supplied one removed), and the authority overridden if asked; the body
   follows as it arrives.
3. The response is relayed downstream, hop-by-hop headers stripped, announced
   by ``ResponseStarted`` and ``ResponseFinished`` (for metrics, tap, balancing).
4. When request and response are both complete: ``ReleaseUpstream(reusable)``,
   then the next request on the downstream connection.

Failures: an upstream that breaks before the response head gives a local 502
with ``l5d-proxy-error``; after it, the downstream connection is closed. A
downstream that goes away releases the upstream as not reusable. Malformed
requests get 400 (431 for a head over ``MAX_HEAD_SIZE``) and the connection closes.

Framing: request and response bodies keep their framing (Content-Length or
chunked, re-chunked as they stream; trailers relayed). A response to an
HTTP/1.0 client, a response delimited by the upstream closing, and any response
after which the client asked to close carry ``connection: close`` and end the
downstream connection. Upstream requests are always HTTP/1.1 with a Host.
Upgrades are not proxied (a 101 answer gives 502).

Commands and heads are slotted dataclasses, not frozen ones (a frozen one pays a
``setattr`` call per field, on every request): treat them as read-only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, auto
from http import HTTPStatus

from mesh.proxy.h1wire import (
    Body,
    Closed,
    End,
    Head,
    MessageReader,
    WireError,
    chunk,
    head_bytes,
    last_chunk,
)
from mesh.proxy.telemetry import Direction

__all__ = [
    "CLIENT_ID_HEADER",
    "PROXY_ERROR_HEADER",
    "CloseDownstream",
    "Command",
    "Header",
    "Http1Session",
    "LocalResponse",
    "Phase",
    "ReleaseUpstream",
    "RequestHead",
    "ResponseFinished",
    "ResponseStarted",
    "RouteRequest",
    "SendDownstream",
    "SendUpstream",
    "UpstreamConnection",
    "strip_hop_by_hop",
]

CLIENT_ID_HEADER = b"l5d-client-id"
PROXY_ERROR_HEADER = b"l5d-proxy-error"
MAX_HEAD_SIZE = 64 * 1024
"""The largest request or response head accepted (a larger request head gets 431)."""

Header = tuple[bytes, bytes]

_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"http2-settings"}
)
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


def strip_hop_by_hop(headers: list[Header] | tuple[Header, ...]) -> list[Header]:
    """``headers`` without hop-by-hop ones (and those the ``Connection`` header lists).

    Framing headers stay: the body is re-sent with the framing it came with.
    """
    drop = _HOP_BY_HOP
    for name, value in headers:
        if name == b"connection":
            listed = {t.strip().lower() for t in value.split(b",")} - _FRAMING
            drop = drop | listed
    return [h for h in headers if h[0] not in drop]


@dataclass(slots=True)
class RequestHead:
    """A request line and headers (names lower-cased)."""

    method: str
    target: str
    headers: tuple[Header, ...]
    http_version: str = "1.1"

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or ``None``."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    @property
    def authority(self) -> str:
        """The absolute-form target's host, else the Host header, else empty."""
        if "://" in self.target:
            return self.target.split("://", 1)[1].split("/", 1)[0]
        host = self.header(b"host")
        return host.decode("latin-1") if host is not None else ""

    @property
    def path(self) -> str:
        """The path and query of the target."""
        if "://" in self.target:
            rest = self.target.split("://", 1)[1]
            return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return self.target


@dataclass(frozen=True, slots=True)
class LocalResponse:
    """A response the proxy makes itself; ``error`` goes in ``l5d-proxy-error``."""

    status: int
    error: str | None = None
    headers: tuple[Header, ...] = ()
    body: bytes = b""

    @classmethod
    def forbidden(cls) -> LocalResponse:
        """403: policy refused the request."""
        return cls(403, "unauthorized request on route")

    @classmethod
    def bad_gateway(cls, error: str) -> LocalResponse:
        """502: the upstream failed."""
        return cls(502, error)

    @classmethod
    def unavailable(cls, error: str) -> LocalResponse:
        """503: no endpoint could take the request."""
        return cls(503, error)

    @classmethod
    def gateway_timeout(cls, error: str) -> LocalResponse:
        """504: the upstream did not answer in time."""
        return cls(504, error)


class UpstreamConnection:
    """The client half of one upstream HTTP/1.1 connection; reusable across requests."""

    __slots__ = ("busy", "chunked", "host", "keep_alive", "key", "reader")

    def __init__(self, host: str, key: object = None) -> None:
        self.reader = MessageReader(response=True, max_head=MAX_HEAD_SIZE)
        self.host = host
        """The Host header to send when a request has none (HTTP/1.0)."""
        self.key = key
        """Whatever the driver uses to find the socket or pool slot."""
        self.busy = False
        """A request is on it whose exchange has not completed."""
        self.keep_alive = True
        """The server has not said (or shown) that it closes after this response."""
        self.chunked = False
        """The request body in flight is chunked."""

    @property
    def reusable(self) -> bool:
        """Whether another request may be sent on it."""
        return self.keep_alive and not self.busy and not self.reader.in_message


@dataclass(slots=True)
class SendDownstream:
    data: bytes


@dataclass(slots=True)
class CloseDownstream:
    pass


@dataclass(slots=True)
class RouteRequest:
    """Decide: ``forward`` the request or ``respond`` locally."""

    head: RequestHead


@dataclass(slots=True)
class SendUpstream:
    upstream: UpstreamConnection
    data: bytes


@dataclass(slots=True)
class ReleaseUpstream:
    """The exchange is over; pool ``upstream`` if ``reusable``, else close it."""

    upstream: UpstreamConnection
    reusable: bool


@dataclass(slots=True)
class ResponseStarted:
    status: int
    local: bool


@dataclass(slots=True)
class ResponseFinished:
    status: int | None
    body_bytes: int
    error: str | None = None


Command = (
    SendDownstream
    | CloseDownstream
    | RouteRequest
    | SendUpstream
    | ReleaseUpstream
    | ResponseStarted
    | ResponseFinished
)


class Phase(Enum):
    IDLE = auto()
    """Waiting for a request head."""
    ROUTING = auto()
    """A request head is with the driver."""
    FORWARDING = auto()
    """Relaying between downstream and an upstream."""
    LOCAL = auto()
    """A local response was sent; discarding the rest of the request body."""
    CLOSED = auto()


@dataclass(slots=True)
class _Exchange:
    head: RequestHead
    keep_alive: bool
    """The client keeps the connection open after this exchange."""
    upstream: UpstreamConnection | None = None
    request_done: bool = False
    response_status: int | None = None
    response_done: bool = False
    body_bytes: int = 0
    no_body: bool = False
    """The response has no body (HEAD, 1xx, 204, 304)."""
    chunk_out: bool = False
    """The response body goes downstream chunked."""
    chunked_in: bool = False
    """The request body came chunked (so it goes upstream chunked)."""


_NO_BODY_STATUS = frozenset({204, 304})


class Http1Session:
    """One downstream HTTP/1.1 connection being proxied (see the module docstring).

    On inbound, ``client_id`` is the verified client identity sent as
    ``l5d-client-id`` (``None`` only removes a client-supplied one).
    """

    def __init__(self, direction: Direction, client_id: str | None = None) -> None:
        self.direction = direction
        self.client_id = client_id
        self.phase = Phase.IDLE
        self._reader = MessageReader(response=False, max_head=MAX_HEAD_SIZE)
        self._pending: deque[Head | Body | End | Closed | WireError] = deque()
        """Parsed but not yet acted on (pipelined requests wait for the exchange before)."""
        self._ex: _Exchange | None = None

    # --- what the driver asks ------------------------------------------------------

    @property
    def request_complete(self) -> bool:
        """Whether the current request's body has been fully received (or there is none)."""
        return self._ex is None or self._ex.request_done

    @property
    def upstream(self) -> UpstreamConnection | None:
        """The upstream of the current exchange, if forwarding."""
        return self._ex.upstream if self._ex else None

    # --- events ----------------------------------------------------------------------

    def receive_downstream(self, data: bytes) -> list[Command]:
        """Bytes from the client (``b""``: it closed its side)."""
        if self.phase is Phase.CLOSED:
            return []
        reader = self._reader
        try:
            self._pending.extend(reader.feed(data))
        except WireError as e:
            self._pending.extend(reader.events)  # the messages before the bad bytes
            self._pending.append(e)
        return self._pump_downstream()

    def receive_upstream(self, data: bytes) -> list[Command]:
        """Bytes from the current upstream (``b""``: it closed)."""
        ex = self._ex
        if ex is None or ex.upstream is None or self.phase is Phase.CLOSED:
            return []
        up = ex.upstream
        try:
            events = up.reader.feed(data)
        except WireError as e:
            error = str(e) or "malformed response"
            if not data:
                error = "connection closed " + (
                    "before the response" if ex.response_status is None else "mid-response"
                )
            return self._upstream_broken(LocalResponse.bad_gateway(error))
        if len(events) == 1:
            return self._relay_response(ex, up, events[0])
        out: list[Command] = []
        for event in events:
            if ex.upstream is not up:
                up.keep_alive = False  # bytes after the response: not reusable
                break
            out += self._relay_response(ex, up, event)
        return out

    def forward(
        self,
        upstream: UpstreamConnection,
        *,
        authority: str | None = None,
        extra_headers: tuple[Header, ...] = (),
    ) -> list[Command]:
        """Send the routed request to ``upstream`` (an idle connection) with ``extra_headers``."""
        ex = self._routing()
        head = ex.head
        headers = strip_hop_by_hop(head.headers)
        if self.direction is Direction.INBOUND:
            headers = [h for h in headers if h[0] != CLIENT_ID_HEADER]
            if self.client_id is not None:
                headers.append((CLIENT_ID_HEADER, self.client_id.encode()))
        host = authority or (None if head.header(b"host") else upstream.host)
        if host is not None:
            headers = [h for h in headers if h[0] != b"host"]
            headers.insert(0, (b"host", host.encode()))
        if extra_headers:
            headers.extend(extra_headers)
        ex.upstream = upstream
        upstream.busy = True
        upstream.chunked = ex.chunked_in
        upstream.reader.skip_body = head.method == "HEAD"
        self.phase = Phase.FORWARDING
        line = f"{head.method} {head.target} HTTP/1.1".encode("latin-1")
        out: list[Command] = [SendUpstream(upstream, head_bytes(line, headers))]
        if self._pending:
            out += self._pump_downstream()
        return out

    def respond(self, response: LocalResponse) -> list[Command]:
        """Answer the routed request locally (e.g. 403, or 503 when nothing can take it)."""
        self._routing()
        return self._respond_local(response) + self._pump_downstream()

    def upstream_failed(self, response: LocalResponse) -> list[Command]:
        """The upstream connection failed (I/O error, timeout): answer with ``response``."""
        if self._ex is None or self._ex.upstream is None:
            return []
        return self._upstream_broken(response)

    # --- internals -----------------------------------------------------------------

    def _routing(self) -> _Exchange:
        if self.phase is not Phase.ROUTING or self._ex is None:
            raise RuntimeError(f"no request is being routed (phase {self.phase.name})")
        return self._ex

    def _pump_downstream(self) -> list[Command]:
        out: list[Command] = []
        pending = self._pending
        while pending and self.phase is not Phase.ROUTING and self.phase is not Phase.CLOSED:
            event = pending[0]
            kind = type(event)
            ex = self._ex
            if ex is not None and (kind is Head or kind is Closed):
                break  # the next request (or the close) waits for this exchange to end
            if kind is WireError and ex is not None and ex.request_done:
                break  # so does an error in the next request
            pending.popleft()
            if kind is Head:
                assert isinstance(event, Head)
                if event.version == "1.1" and not event.has_host:
                    return out + self._downstream_broken(
                        WireError("Missing mandatory Host: header")
                    )
                head = RequestHead(
                    event.method,
                    event.target.decode("latin-1"),
                    tuple(event.headers),
                    event.version,
                )
                self._ex = _Exchange(head, event.keep_alive, chunked_in=event.chunked)
                self.phase = Phase.ROUTING
                out.append(RouteRequest(head))
            elif kind is Body:
                assert isinstance(event, Body)
                if ex is not None and ex.upstream is not None and event.data:
                    to = ex.upstream
                    out.append(SendUpstream(to, chunk(event.data) if to.chunked else event.data))
            elif kind is End:
                if ex is None:
                    continue
                assert isinstance(event, End)
                ex.request_done = True
                last = ex.upstream
                if last is not None and last.chunked:
                    out.append(SendUpstream(last, last_chunk(event.trailers)))
                if ex.response_done:
                    out += self._maybe_complete()
            elif kind is Closed:
                out += self._close_downstream("client closed the connection")
            else:
                assert isinstance(event, WireError)
                return out + self._downstream_broken(event)
        return out

    def _relay_response(
        self, ex: _Exchange, up: UpstreamConnection, event: Head | Body | End | Closed
    ) -> list[Command]:
        kind = type(event)
        if kind is Body:
            assert isinstance(event, Body)
            data = event.data
            if not data:
                return []
            ex.body_bytes += len(data)
            return [SendDownstream(chunk(data) if ex.chunk_out else data)]
        if kind is Head:
            assert isinstance(event, Head)
            return self._relay_head(ex, up, event)
        if kind is End:
            assert isinstance(event, End)
            if ex.response_status is None:
                return []  # the end of an informational response
            ex.response_done = True
            up.busy = False
            out: list[Command] = []
            if ex.chunk_out:
                out.append(SendDownstream(last_chunk(event.trailers)))
            out.append(ResponseFinished(ex.response_status, ex.body_bytes))
            if ex.request_done:
                out += self._maybe_complete()
            return out
        return self._upstream_broken(
            LocalResponse.bad_gateway("connection closed before the response")
        )

    def _relay_head(self, ex: _Exchange, up: UpstreamConnection, event: Head) -> list[Command]:
        if event.status == 101 or event.upgrade:
            return self._upstream_broken(LocalResponse.bad_gateway("upgrades are not supported"))
        headers = strip_hop_by_hop(event.headers)
        line = b"HTTP/1.1 %d %b" % (event.status, event.reason)
        if event.status < 200:
            return [SendDownstream(head_bytes(line, headers))]
        if not event.keep_alive:
            up.keep_alive = False
        ex.response_status = event.status
        ex.no_body = ex.head.method == "HEAD" or event.status in _NO_BODY_STATUS
        if not ex.no_body:
            if event.chunked and ex.head.http_version != "1.1":
                headers = [(n, v) for n, v in headers if n != b"transfer-encoding"]
                ex.keep_alive = False  # the body ends when the connection does
            elif event.chunked:
                ex.chunk_out = True
            elif not event.has_length:
                ex.keep_alive = False
        if not ex.keep_alive:
            headers.append((b"connection", b"close"))
        data = head_bytes(line, headers)
        return [SendDownstream(data), ResponseStarted(event.status, local=False)]

    def _respond_local(self, response: LocalResponse) -> list[Command]:
        ex = self._ex
        assert ex is not None
        if ex.response_status is not None:
            return self._close_downstream(response.error or "cannot respond")
        headers: list[Header] = [(b"content-length", str(len(response.body)).encode())]
        if response.error is not None:
            headers.append((PROXY_ERROR_HEADER, response.error.encode()))
        headers += list(response.headers)
        if not ex.keep_alive:
            headers.append((b"connection", b"close"))
        line = b"HTTP/1.1 %d %b" % (response.status, _reason(response.status))
        data = head_bytes(line, headers)
        if response.body and ex.head.method != "HEAD":
            data += response.body
        ex.response_status = response.status
        ex.response_done = True
        ex.body_bytes = len(response.body)
        self.phase = Phase.LOCAL
        out: list[Command] = [
            SendDownstream(data),
            ResponseStarted(response.status, local=True),
            ResponseFinished(response.status, len(response.body)),
        ]
        return out + self._maybe_complete()

    def _maybe_complete(self) -> list[Command]:
        ex = self._ex
        if ex is None or not (ex.request_done and ex.response_done):
            return []
        out: list[Command] = []
        up = ex.upstream
        if up is not None:
            up.busy = False
            ex.upstream = None
            out.append(ReleaseUpstream(up, up.reusable))
        self._ex = None
        if ex.keep_alive:
            self.phase = Phase.IDLE
            out += self._pump_downstream()
        else:
            out += self._close_downstream(None)
        return out

    def _upstream_broken(self, response: LocalResponse) -> list[Command]:
        ex = self._ex
        out: list[Command] = []
        if ex is None:
            return out
        if ex.upstream is not None:
            ex.upstream.keep_alive = False
            out.append(ReleaseUpstream(ex.upstream, reusable=False))
            ex.upstream = None
        if ex.response_status is None:
            return out + self._respond_local(response) + self._pump_downstream()
        if not ex.response_done:
            out.append(ResponseFinished(ex.response_status, ex.body_bytes, response.error))
        return out + self._close_downstream(response.error)

    def _downstream_broken(self, error: WireError) -> list[Command]:
        ex = self._ex
        if ex is None or (ex.upstream is None and ex.response_status is None):
            body = f"{error}\n".encode()
            headers: list[Header] = [
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            line = b"HTTP/1.1 %d %b" % (error.status, _reason(error.status))
            out: list[Command] = [SendDownstream(head_bytes(line, headers) + body)]
            return out + self._close_downstream(None)
        return self._close_downstream(str(error) or type(error).__name__)

    def _close_downstream(self, error: str | None) -> list[Command]:
        out: list[Command] = []
        ex = self._ex
        if ex is not None:
            if ex.upstream is not None:
                ex.upstream.keep_alive = False
                out.append(ReleaseUpstream(ex.upstream, reusable=False))
                ex.upstream = None
            if ex.response_status is not None and not ex.response_done:
                out.append(ResponseFinished(ex.response_status, ex.body_bytes, error))
            self._ex = None
        self.phase = Phase.CLOSED
        self._pending.clear()
        out.append(CloseDownstream())
        return out


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
