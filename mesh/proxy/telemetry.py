"""The proxy's metrics with Linkerd's names and labels, sans I/O.

Rules:
- Label tuples are built once per connection or per target and cached here;
  per request, recording is a few dict updates.
- ``tls`` is ``"true"`` with ``client_id`` (inbound) or ``server_id``
  (outbound); otherwise ``"no_identity"`` with a ``no_tls_reason`` as upstream
  (``no_tls_from_remote``, ``not_provided_by_service_discovery``, ``loopback``),
  or ``"disabled"`` when the proxy has no identity.
- Inbound series carry ``srv_*`` (and, for HTTP, ``route_*`` and ``authz_*``)
  labels; outbound series carry ``dst_*`` labels from discovery.
- A response is a ``failure`` when its status is 5xx or it ended in an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mesh.proxy.discovery import Address
from mesh.proxy.metrics import LATENCY_BUCKETS_MS, Cell, Labels, Registry, Series
from mesh.proxy.policy import Allow, Authorization, Server

__all__ = [
    "TCP_DURATION_BUCKETS_MS",
    "Direction",
    "HttpStats",
    "InboundLabels",
    "NoTls",
    "ProxyMetrics",
    "TcpStats",
    "TlsStatus",
    "outbound_labels",
]

TCP_DURATION_BUCKETS_MS: tuple[float, ...] = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000)


class Direction(StrEnum):
    """Which side of the pod traffic is on."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class NoTls(StrEnum):
    """Why a connection is not mTLS, as Linkerd's ``no_tls_reason`` says it."""

    NO_TLS_FROM_REMOTE = "no_tls_from_remote"
    NOT_PROVIDED_BY_SERVICE_DISCOVERY = "not_provided_by_service_discovery"
    LOOPBACK = "loopback"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class TlsStatus:
    """mTLS with the peer's verified ``identity``, or plaintext because of ``reason``."""

    identity: str | None = None
    reason: NoTls | None = None

    @property
    def secured(self) -> bool:
        """Whether the connection is mTLS."""
        return self.reason is None

    def labels(self, direction: Direction) -> Labels:
        """The ``tls`` labels of this status for ``direction``."""
        if self.reason is NoTls.DISABLED:
            return (("tls", "disabled"),)
        if self.reason is not None:
            return (("tls", "no_identity"), ("no_tls_reason", self.reason.value))
        peer = "client_id" if direction is Direction.INBOUND else "server_id"
        return (("tls", "true"), (peer, self.identity or ""))


def _target(address: Address) -> Labels:
    return (
        ("target_addr", str(address)),
        ("target_ip", address.host),
        ("target_port", str(address.port)),
    )


def _server(server: Server, port: int) -> Labels:
    return (
        ("srv_group", server.group),
        ("srv_kind", server.kind),
        ("srv_name", server.name),
        ("srv_port", str(port)),
    )


def _authz(authorization: Authorization) -> Labels:
    return (
        ("authz_group", authorization.group),
        ("authz_kind", authorization.kind),
        ("authz_name", authorization.name),
    )


def _route(authorization: Authorization) -> Labels:
    name = (
        "probe" if authorization.kind == "default" and authorization.name == "probe" else "default"
    )
    return (("route_group", ""), ("route_kind", "default"), ("route_name", name))


def outbound_labels(authority: str, target: Address, tls: TlsStatus, dst: Labels) -> Labels:
    """The base labels of outbound HTTP series towards one endpoint."""
    dst_labels = tuple((f"dst_{k}", v) for k, v in dst)
    return (
        ("direction", "outbound"),
        ("authority", authority),
        *_target(target),
        *tls.labels(Direction.OUTBOUND),
        *dst_labels,
    )


class ProxyMetrics:
    """Every family the proxy exports, in one registry."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        r = self.registry
        self.request_total = r.counter("request_total", "Total count of HTTP requests.")
        self.response_total = r.counter("response_total", "Total count of HTTP responses.")
        self.response_latency_ms = r.histogram(
            "response_latency_ms",
            "Elapsed times between a request's headers being received and its response stream "
            "completing",
            LATENCY_BUCKETS_MS,
        )
        self.tcp_open_total = r.counter("tcp_open_total", "Total count of opened connections")
        self.tcp_close_total = r.counter("tcp_close_total", "Total count of closed connections")
        self.tcp_open_connections = r.gauge(
            "tcp_open_connections", "Number of currently-open connections"
        )
        self.tcp_read_bytes_total = r.counter(
            "tcp_read_bytes_total", "Total count of bytes read from peers"
        )
        self.tcp_write_bytes_total = r.counter(
            "tcp_write_bytes_total", "Total count of bytes written to peers"
        )
        self.tcp_connection_duration_ms = r.histogram(
            "tcp_connection_duration_ms",
            "Connection lifetimes",
            TCP_DURATION_BUCKETS_MS,
        )
        self.inbound_http_authz_allow_total = r.counter(
            "inbound_http_authz_allow_total", "The total number of inbound HTTP requests allowed"
        )
        self.inbound_http_authz_deny_total = r.counter(
            "inbound_http_authz_deny_total", "The total number of inbound HTTP requests denied"
        )
        self.inbound_tcp_authz_allow_total = r.counter(
            "inbound_tcp_authz_allow_total",
            "The total number of inbound TCP connections that were authorized",
        )
        self.inbound_tcp_authz_deny_total = r.counter(
            "inbound_tcp_authz_deny_total",
            "The total number of inbound TCP connections that were denied",
        )
        self._http: dict[Labels, HttpStats] = {}
        self._tcp: dict[Labels, TcpStats] = {}

    def http(self, labels: Labels) -> HttpStats:
        """The recorder of HTTP series with base ``labels`` (cached)."""
        stats = self._http.get(labels)
        if stats is None:
            stats = self._http[labels] = HttpStats(self, labels)
        return stats

    def tcp(self, labels: Labels) -> TcpStats:
        """The recorder of TCP series with base ``labels`` (cached)."""
        stats = self._tcp.get(labels)
        if stats is None:
            stats = self._tcp[labels] = TcpStats(self, labels)
        return stats

    def render(self) -> str:
        """The Prometheus text of every series."""
        return self.registry.render()


class HttpStats:
    """Records requests and responses of one label set."""

    __slots__ = ("_labels", "_m", "_request", "_responses")

    def __init__(self, metrics: ProxyMetrics, labels: Labels) -> None:
        self._m = metrics
        self._labels = labels
        self._request = metrics.request_total.cell(labels)
        self._responses: dict[tuple[int | None, str | None], tuple[Cell, Series]] = {}

    def request(self) -> None:
        """A request was received."""
        self._request.value += 1

    def response(self, status: int | None, latency_s: float, error: str | None = None) -> None:
        """A response ended ``latency_s`` after its request (``status`` None: none came)."""
        key = (status, error)
        cached = self._responses.get(key)
        if cached is None:
            code: Labels = (("status_code", str(status)),) if status is not None else ()
            failed = error is not None or status is None or status >= 500
            total = (
                *self._labels,
                *code,
                ("classification", "failure" if failed else "success"),
                *((("error", error),) if error else ()),
            )
            cached = self._responses[key] = (
                self._m.response_total.cell(total),
                self._m.response_latency_ms.series_for((*self._labels, *code)),
            )
        cached[0].value += 1
        cached[1].observe(latency_s * 1000.0)


class TcpStats:
    """Records the connections of one label set."""

    __slots__ = ("_close", "_labels", "_m", "_open", "_read", "_total", "_write")

    def __init__(self, metrics: ProxyMetrics, labels: Labels) -> None:
        self._m = metrics
        self._labels = labels
        self._total = metrics.tcp_open_total.cell(labels)
        self._open = metrics.tcp_open_connections.cell(labels)
        self._read = metrics.tcp_read_bytes_total.cell(labels)
        self._write = metrics.tcp_write_bytes_total.cell(labels)
        self._close: dict[str, tuple[Cell, Series]] = {}

    def opened(self) -> None:
        """A connection opened."""
        self._total.value += 1
        self._open.value += 1

    def closed(self, duration_s: float, errno: str = "") -> None:
        """A connection closed after ``duration_s``."""
        cached = self._close.get(errno)
        if cached is None:
            labels = (*self._labels, ("errno", errno))
            cached = self._close[errno] = (
                self._m.tcp_close_total.cell(labels),
                self._m.tcp_connection_duration_ms.series_for(labels),
            )
        cached[0].value += 1
        self._open.value -= 1
        cached[1].observe(duration_s * 1000.0)

    def read(self, n: int) -> None:
        """``n`` bytes were read from the peer."""
        self._read.value += n

    def wrote(self, n: int) -> None:
        """``n`` bytes were written to the peer."""
        self._write.value += n


class InboundLabels:
    """The label sets of one inbound connection: its target, TLS status and server."""

    __slots__ = (
        "_allow",
        "_http",
        "_m",
        "_server_labels",
        "_target",
        "_tls_labels",
        "tcp_labels",
        "tls",
    )

    def __init__(
        self, metrics: ProxyMetrics, target: Address, tls: TlsStatus, server: Server
    ) -> None:
        self._m = metrics
        self.tls = tls
        tls_labels = tls.labels(Direction.INBOUND)
        self.tcp_labels: Labels = (
            ("direction", "inbound"),
            ("peer", "src"),
            *_target(target),
            *tls_labels,
            *_server(server, target.port),
        )
        self._target = _target(target)
        self._tls_labels = tls_labels
        self._server_labels = _server(server, target.port)
        self._allow: dict[tuple[str, str, str], Cell] = {}
        self._http: dict[tuple[str, str, str, str], HttpStats] = {}

    def _allow_cell(self, authorization: Authorization) -> Cell:
        key = (authorization.group, authorization.kind, authorization.name)
        cell = self._allow.get(key)
        if cell is None:
            labels = (
                *self._target,
                *self._server_labels,
                *_route(authorization),
                *_authz(authorization),
                *self._tls_labels,
            )
            cell = self._allow[key] = self._m.inbound_http_authz_allow_total.cell(labels)
        return cell

    def tcp(self) -> TcpStats:
        """The recorder of this connection's TCP series."""
        return self._m.tcp(self.tcp_labels)

    def http_allowed(self, allow: Allow) -> None:
        """Count an HTTP request admitted by ``allow``."""
        self._allow_cell(allow.authorization).value += 1

    def http_denied(self) -> None:
        """Count an HTTP request refused by policy."""
        route = (("route_group", ""), ("route_kind", "default"), ("route_name", "default"))
        self._m.inbound_http_authz_deny_total.inc(
            (*self._target, *self._server_labels, *route, *self._tls_labels)
        )

    def tcp_allowed(self, allow: Allow) -> None:
        """Count a TCP connection admitted by ``allow``."""
        a = allow.authorization
        self._m.inbound_tcp_authz_allow_total.inc(
            (*self._target, *self._server_labels, *_authz(a), *self._tls_labels)
        )

    def tcp_denied(self) -> None:
        """Count a TCP connection refused by policy."""
        self._m.inbound_tcp_authz_deny_total.inc(
            (*self._target, *self._server_labels, *self._tls_labels)
        )

    def http(self, authority: str, authorization: Authorization | None) -> HttpStats:
        """The recorder of HTTP series for ``authority`` (``authorization`` None: denied)."""
        a = authorization
        key = (authority, a.group if a else "", a.kind if a else "", a.name if a else "")
        stats = self._http.get(key)
        if stats is None:
            authz = _authz(a) if a else ()
            route = _route(a) if a else _route(Authorization(name=""))
            labels = (
                ("direction", "inbound"),
                ("authority", authority),
                *self._target,
                *self._tls_labels,
                *self._server_labels,
                *route,
                *authz,
            )
            stats = self._http[key] = self._m.http(labels)
        return stats
