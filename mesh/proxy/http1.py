"""HTTP/1.1 forwarding on top of h11, sans I/O.

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
downstream that goes away releases the upstream as not reusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from http import HTTPStatus

import h11

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

    Framing headers stay: h11 needs them to frame the body it re-sends.
    """
    listed: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            listed.update(t.strip().lower() for t in value.split(b","))
    listed -= _FRAMING
    return [(n, v) for n, v in headers if n not in _HOP_BY_HOP and n not in listed]


@dataclass(frozen=True, slots=True)
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

    __slots__ = ("conn", "host", "key")

    def __init__(self, host: str, key: object = None) -> None:
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
        self.host = host
        """The Host header to send when a request has none (HTTP/1.0)."""
        self.key = key
        """Whatever the driver uses to find the socket or pool slot."""

    @property
    def reusable(self) -> bool:
        """Whether another request may be sent on it."""
        return self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE


@dataclass(frozen=True, slots=True)
class SendDownstream:
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseDownstream:
    pass


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """Decide: ``forward`` the request or ``respond`` locally."""

    head: RequestHead


@dataclass(frozen=True, slots=True)
class SendUpstream:
    upstream: UpstreamConnection
    data: bytes


@dataclass(frozen=True, slots=True)
class ReleaseUpstream:
    """The exchange is over; pool ``upstream`` if ``reusable``, else close it."""

    upstream: UpstreamConnection
    reusable: bool


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    status: int
    local: bool


@dataclass(frozen=True, slots=True)
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


@dataclass
class _Exchange:
    head: RequestHead
    upstream: UpstreamConnection | None = None
    request_done: bool = False
    response_status: int | None = None
    response_done: bool = False
    body_bytes: int = 0


class Http1Session:
    """One downstream HTTP/1.1 connection being proxied (see the module docstring).

    On inbound, ``client_id`` is the verified client identity sent as
    ``l5d-client-id`` (``None`` only removes a client-supplied one).
    """

    def __init__(self, direction: Direction, client_id: str | None = None) -> None:
        self.direction = direction
        self.client_id = client_id
        self.phase = Phase.IDLE
        self._down = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_SIZE)
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
        self._down.receive_data(data)
        return _clean(self._pump_downstream())

    def receive_upstream(self, data: bytes) -> list[Command]:
        """Bytes from the current upstream (``b""``: it closed)."""
        ex = self._ex
        if ex is None or ex.upstream is None or self.phase is Phase.CLOSED:
            return []
        up = ex.upstream
        up.conn.receive_data(data)
        out: list[Command] = []
        while ex.upstream is not None:
            try:
                event = up.conn.next_event()
            except h11.RemoteProtocolError as e:
                error = _describe(e)
                if not data:
                    error = "connection closed " + (
                        "before the response" if ex.response_status is None else "mid-response"
                    )
                out += self._upstream_broken(LocalResponse.bad_gateway(error))
                break
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            try:
                out += self._relay_response(ex, event)
            except h11.LocalProtocolError as e:
                out += self._upstream_broken(LocalResponse.bad_gateway(str(e)))
                break
        return _clean(out)

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
            headers = [(n, v) for n, v in headers if n != CLIENT_ID_HEADER]
            if self.client_id is not None:
                headers.append((CLIENT_ID_HEADER, self.client_id.encode()))
        host = authority or (None if head.header(b"host") else upstream.host)
        if host is not None:
            headers = [(n, v) for n, v in headers if n != b"host"]
            headers.insert(0, (b"host", host.encode()))
        headers.extend(extra_headers)
        request = h11.Request(method=head.method, target=head.target, headers=headers)
        ex.upstream = upstream
        self.phase = Phase.FORWARDING
        try:
            data = upstream.conn.send(request)
        except h11.LocalProtocolError as e:
            return _clean(self._upstream_broken(LocalResponse.bad_gateway(str(e))))
        out: list[Command] = [SendUpstream(upstream, data or b"")]
        return _clean(out + self._pump_downstream())

    def respond(self, response: LocalResponse) -> list[Command]:
        """Answer the routed request locally (e.g. 403, or 503 when nothing can take it)."""
        self._routing()
        return _clean(self._respond_local(response) + self._pump_downstream())

    def upstream_failed(self, response: LocalResponse) -> list[Command]:
        """The upstream connection failed (I/O error, timeout): answer with ``response``."""
        if self._ex is None or self._ex.upstream is None:
            return []
        return _clean(self._upstream_broken(response))

    # --- internals -----------------------------------------------------------------

    def _routing(self) -> _Exchange:
        if self.phase is not Phase.ROUTING or self._ex is None:
            raise RuntimeError(f"no request is being routed (phase {self.phase.name})")
        return self._ex

    def _pump_downstream(self) -> list[Command]:
        out: list[Command] = []
        while self.phase not in (Phase.ROUTING, Phase.CLOSED):
            try:
                event = self._down.next_event()
            except h11.RemoteProtocolError as e:
                return out + self._downstream_broken(e)
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            ex = self._ex
            if isinstance(event, h11.Request) and _head_size(event) > MAX_HEAD_SIZE:
                # h11 bounds only heads that arrive in pieces; one that came whole is checked here
                error = h11.RemoteProtocolError("request head too large", error_status_hint=431)
                return out + self._downstream_broken(error)
            if isinstance(event, h11.Request):
                head = RequestHead(
                    event.method.decode("ascii"),
                    event.target.decode("latin-1"),
                    tuple(event.headers),
                    event.http_version.decode("ascii"),
                )
                self._ex = _Exchange(head)
                self.phase = Phase.ROUTING
                out.append(RouteRequest(head))
            elif isinstance(event, h11.Data) and ex is not None:
                if ex.upstream is not None:
                    out.append(SendUpstream(ex.upstream, _send(ex.upstream, h11.Data(event.data))))
            elif isinstance(event, h11.EndOfMessage) and ex is not None:
                ex.request_done = True
                if ex.upstream is not None:
                    eom = h11.EndOfMessage(headers=list(event.headers))
                    out.append(SendUpstream(ex.upstream, _send(ex.upstream, eom)))
                out += self._maybe_complete()
            elif isinstance(event, h11.ConnectionClosed):
                out += self._close_downstream("client closed the connection")
        return out

    def _relay_response(self, ex: _Exchange, event: object) -> list[Command]:
        down = self._down
        if isinstance(event, h11.InformationalResponse):
            if event.status_code == 101:
                return self._upstream_broken(
                    LocalResponse.bad_gateway("upgrades are not supported")
                )
            info = h11.InformationalResponse(
                status_code=event.status_code,
                headers=strip_hop_by_hop(list(event.headers)),
                reason=event.reason,
            )
            return [SendDownstream(down.send(info) or b"")]
        if isinstance(event, h11.Response):
            ex.response_status = event.status_code
            response = h11.Response(
                status_code=event.status_code,
                headers=strip_hop_by_hop(list(event.headers)),
                reason=event.reason,
            )
            data = down.send(response) or b""
            return [SendDownstream(data), ResponseStarted(event.status_code, local=False)]
        if isinstance(event, h11.Data):
            ex.body_bytes += len(event.data)
            return [SendDownstream(down.send(h11.Data(event.data)) or b"")]
        if isinstance(event, h11.EndOfMessage):
            ex.response_done = True
            data = down.send(h11.EndOfMessage(headers=list(event.headers))) or b""
            out: list[Command] = [
                SendDownstream(data),
                ResponseFinished(ex.response_status, ex.body_bytes),
            ]
            return out + self._maybe_complete()
        if isinstance(event, h11.ConnectionClosed):
            return self._upstream_broken(
                LocalResponse.bad_gateway("connection closed before the response")
            )
        return []

    def _respond_local(self, response: LocalResponse) -> list[Command]:
        ex = self._ex
        assert ex is not None
        down = self._down
        if down.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return self._close_downstream(response.error or "cannot respond")
        headers: list[Header] = [(b"content-length", str(len(response.body)).encode())]
        if response.error is not None:
            headers.append((PROXY_ERROR_HEADER, response.error.encode()))
        headers += list(response.headers)
        reason = _reason(response.status)
        head = h11.Response(status_code=response.status, headers=headers, reason=reason)
        data = down.send(head) or b""
        if response.body:
            data += down.send(h11.Data(response.body)) or b""
        data += down.send(h11.EndOfMessage()) or b""
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
            reusable = up.conn.our_state is h11.DONE and up.conn.their_state is h11.DONE
            if reusable:
                up.conn.start_next_cycle()
            ex.upstream = None
            out.append(ReleaseUpstream(up, reusable))
        self._ex = None
        down = self._down
        if down.our_state is h11.DONE and down.their_state is h11.DONE:
            down.start_next_cycle()
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
            out.append(ReleaseUpstream(ex.upstream, reusable=False))
            ex.upstream = None
        if ex.response_status is None:
            return out + self._respond_local(response) + self._pump_downstream()
        if not ex.response_done:
            out.append(ResponseFinished(ex.response_status, ex.body_bytes, response.error))
        return out + self._close_downstream(response.error)

    def _downstream_broken(self, error: h11.RemoteProtocolError) -> list[Command]:
        ex = self._ex
        down = self._down
        if (ex is None or ex.upstream is None) and down.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = error.error_status_hint
            body = f"{error}\n".encode()
            headers: list[Header] = [
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            try:
                data = down.send(h11.Response(status_code=status, headers=headers)) or b""
                data += (down.send(h11.Data(body)) or b"") + (down.send(h11.EndOfMessage()) or b"")
            except h11.LocalProtocolError:
                data = b""
            out: list[Command] = [SendDownstream(data)] if data else []
            return out + self._close_downstream(None)
        return self._close_downstream(_describe(error))

    def _close_downstream(self, error: str | None) -> list[Command]:
        out: list[Command] = []
        ex = self._ex
        if ex is not None:
            if ex.upstream is not None:
                out.append(ReleaseUpstream(ex.upstream, reusable=False))
                ex.upstream = None
            if ex.response_status is not None and not ex.response_done:
                out.append(ResponseFinished(ex.response_status, ex.body_bytes, error))
            self._ex = None
        self.phase = Phase.CLOSED
        out.append(CloseDownstream())
        return out


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _clean(commands: list[Command]) -> list[Command]:
    """``commands`` without empty sends (an empty write would read as end of stream)."""
    return [c for c in commands if not isinstance(c, SendDownstream | SendUpstream) or c.data]


def _send(upstream: UpstreamConnection, event: h11.Data | h11.EndOfMessage) -> bytes:
    return upstream.conn.send(event) or b""


def _head_size(request: h11.Request) -> int:
    """The size of ``request``'s head as sent (near enough: line and header fields)."""
    fields = sum(len(name) + len(value) + 4 for name, value in request.headers.raw_items())
    return len(request.method) + len(request.target) + 12 + fields


def _describe(error: h11.ProtocolError) -> str:
    text = str(error)
    return text if text else type(error).__name__
