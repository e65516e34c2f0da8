"""The outbound side (port 4140): the app's connections, sent where discovery says.

Per connection:
1. The original destination names the target (a service IP and port, usually);
   its ``Destination`` (discovery watch + balancer) is looked up. A connection
   to the listener itself (not redirected) is refused: it would loop.
2. Detection: HTTP/1 is balanced per request; anything else (including the
   app's own TLS) is opaque and balanced per connection.
3. An endpoint with an identity is reached over mTLS with SNI = that identity,
   and the server must present exactly it; an endpoint without one in plaintext.
   An opaque stream to a gateway endpoint (an ``authority_override``) begins
   with a transport header naming the remote service (``transport_header``).
   A target discovery does not know is forwarded to the original destination.
4. A failed connection marks the endpoint unready for a while and the request
   tries another ready endpoint; with none, HTTP gets 502 (504 on a timeout) and
   no endpoints at all within the failfast timeout gets 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mesh.proxy import transport_header
from mesh.proxy.balancer import Balancer, Lease
from mesh.proxy.config import ProxyConfig
from mesh.proxy.connection import Conn, connect, detect_protocol, splice
from mesh.proxy.detect import Detector, Http1
from mesh.proxy.discovery import Address, Endpoint
from mesh.proxy.exchange import Exchange
from mesh.proxy.forwarding import Forward, Respond, Router, serve_http
from mesh.proxy.http1 import Http1Session, LocalResponse, RequestHead
from mesh.proxy.origdst import OriginalDestination
from mesh.proxy.pool import ConnectionPool, PooledConnection, PoolKey
from mesh.proxy.resolve import Choice, Destination, Destinations
from mesh.proxy.tap import Peer, RequestInfo, TapHub
from mesh.proxy.telemetry import (
    Direction,
    HttpStats,
    NoTls,
    ProxyMetrics,
    TlsStatus,
    outbound_labels,
)
from mesh.proxy.tls import HandshakeError, TlsSession, TlsStore

__all__ = ["Outbound"]

log = logging.getLogger(__name__)

_LOOPBACK_LABELS = (("tls", "no_identity"), ("no_tls_reason", NoTls.LOOPBACK.value))
_UNDISCOVERED = TlsStatus(reason=NoTls.NOT_PROVIDED_BY_SERVICE_DISCOVERY)


def _observer(balancer: Balancer[Address], lease: Lease[Address]) -> Callable[[float, bool], None]:
    """Feeds a request's RTT (to its response head) back to the balancer."""

    def observe(at: float, ok: bool) -> None:
        if ok:
            balancer.finish(lease, at)
        else:
            balancer.fail(lease, at)

    return observe


class _Router:
    """Balances each request of one connection over its destination's endpoints."""

    def __init__(
        self, outbound: Outbound, destination: Destination, target: Address, source: Address
    ):
        self.outbound = outbound
        self.destination = destination
        self.target = target
        self.source = source
        self._last_stats: tuple[Endpoint | None, str, HttpStats] | None = None
        """The series of the last endpoint and authority (requests on one connection repeat)."""
        self._last_key: tuple[Endpoint, PoolKey, TlsStatus] | None = None
        """How the last endpoint is reached (``key_for`` without its allocations)."""

    def _info(
        self, head: RequestHead, endpoint: Address, tls: TlsStatus
    ) -> Callable[[], RequestInfo]:
        def info() -> RequestInfo:
            meta = (("tls", "true"), ("server_id", tls.identity or "")) if tls.secured else ()
            return RequestInfo(
                self.outbound.tap.next_id(),
                Direction.OUTBOUND,
                Peer(self.source, (("tls", "no_identity"),)),
                Peer(endpoint, meta),
                head.method,
                "http",
                head.authority,
                head.path,
            )

        return info

    async def route(self, head: RequestHead) -> Forward | Respond:
        out = self.outbound
        now = out.clock()
        deadline = now + out.config.timeouts.failfast
        failure: LocalResponse | None = None
        while True:
            choice = await out.destinations.choose(self.destination, deadline, head)
            endpoint = choice.endpoint
            if choice.failure is not None:
                response = failure or LocalResponse(choice.status, choice.failure)
                return Respond(response, self._exchange(head, now, self.target, None, None))
            key, tls = out.key_for(endpoint, self.target)
            lease, balancer = choice.lease, choice.balancer
            try:
                upstream = await out.pool.acquire(key)
            except (OSError, TimeoutError, HandshakeError) as e:
                timed_out = isinstance(e, TimeoutError)
                failure = (
                    LocalResponse.gateway_timeout(f"connect to {key.address} timed out")
                    if timed_out
                    else LocalResponse.bad_gateway(f"connect to {key.address} failed: {e}")
                )
                if lease is None or balancer is None:
                    return Respond(failure, self._exchange(head, now, key.address, endpoint, tls))
                backoff = out.clock() + out.config.timeouts.connect_backoff
                balancer.fail(lease, out.clock(), unready_until=backoff)
                deadline = out.clock()  # only endpoints ready right now get another try
                continue

            return self._forward(head, now, choice, key, tls, upstream)

    def route_now(self, head: RequestHead) -> Forward | Respond | None:
        """``route`` when the endpoint is known and an idle connection to it is pooled."""
        out = self.outbound
        choice = out.destinations.choose_now(self.destination, head)
        if choice is None:
            return None
        now = out.clock()
        if choice.failure is not None:
            response = LocalResponse(choice.status, choice.failure)
            return Respond(response, self._exchange(head, now, self.target, None, None))
        endpoint = choice.endpoint
        cached = self._last_key
        if cached is not None and endpoint is not None and cached[0] is endpoint:
            key, tls = cached[1], cached[2]
        else:
            key, tls = out.key_for(endpoint, self.target)
            if endpoint is not None:
                self._last_key = (endpoint, key, tls)
        upstream = out.pool.acquire_idle(key)
        if upstream is None:
            if choice.lease is not None and choice.balancer is not None:
                choice.balancer.release(choice.lease)
            return None
        return self._forward(head, now, choice, key, tls, upstream)

    def _forward(
        self,
        head: RequestHead,
        now: float,
        choice: Choice,
        key: PoolKey,
        tls: TlsStatus,
        upstream: PooledConnection,
    ) -> Forward:
        lease, balancer, endpoint = choice.lease, choice.balancer, choice.endpoint
        observe = None
        if lease is not None and balancer is not None:
            observe = _observer(balancer, lease)
        exchange = self._exchange(head, now, key.address, endpoint, tls, observe)
        authority = endpoint.authority_override if endpoint is not None else None
        return Forward(upstream, exchange, authority)

    def _exchange(
        self,
        head: RequestHead,
        now: float,
        address: Address,
        endpoint: Endpoint | None,
        tls: TlsStatus | None,
        observe: Callable[[float, bool], None] | None = None,
    ) -> Exchange:
        tls = tls or _UNDISCOVERED
        authority = head.authority
        cached = self._last_stats
        if cached is not None and cached[0] is endpoint and cached[1] == authority:
            stats = cached[2]
        else:
            dst = endpoint.labels if endpoint is not None else ()
            stats = self.outbound.http_stats(authority, address, tls, dst)
            self._last_stats = (endpoint, authority, stats)
        tap = self.outbound.tap
        info = self._info(head, address, tls) if tap.active else None
        return Exchange(now, stats, tap, info, observe)


class Outbound:
    """Handles connections accepted on the outbound port."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        destinations: Destinations,
        tls: TlsStore | None,
        metrics: ProxyMetrics,
        tap: TapHub,
        original_destination: OriginalDestination,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.destinations = destinations
        self.tls = tls
        self.metrics = metrics
        self.tap = tap
        self.original_destination = original_destination
        self.clock = clock
        self.pool = ConnectionPool(
            self._connect,
            clock=clock,
            idle_timeout=config.timeouts.pool_idle,
            max_idle=config.pool_max_idle,
        )
        self._stats: dict[
            tuple[str, Address, TlsStatus, tuple[tuple[str, str], ...]], HttpStats
        ] = {}

    def http_stats(
        self, authority: str, address: Address, tls: TlsStatus, dst: tuple[tuple[str, str], ...]
    ) -> HttpStats:
        """The recorder of outbound HTTP series to ``address`` (cached: no labels per request)."""
        key = (authority, address, tls, dst)
        stats = self._stats.get(key)
        if stats is None:
            labels = outbound_labels(authority, address, tls, dst)
            stats = self._stats[key] = self.metrics.http(labels)
        return stats

    def router(self, destination: Destination, target: Address, source: Address) -> Router:
        """Routes requests to ``destination`` as this side does (the gateway reuses it)."""
        return _Router(self, destination, target, source)

    def key_for(self, endpoint: Endpoint | None, target: Address) -> tuple[PoolKey, TlsStatus]:
        """How to reach ``endpoint`` (``None``: the original destination) and its TLS status."""
        if endpoint is None:
            return PoolKey(target), TlsStatus(reason=NoTls.NOT_PROVIDED_BY_SERVICE_DISCOVERY)
        if endpoint.identity is None:
            return PoolKey(endpoint.address), TlsStatus(
                reason=NoTls.NOT_PROVIDED_BY_SERVICE_DISCOVERY
            )
        if self.tls is None:
            return PoolKey(endpoint.address), TlsStatus(reason=NoTls.DISABLED)
        return PoolKey(endpoint.address, endpoint.identity), TlsStatus(endpoint.identity)

    async def _connect(self, key: PoolKey) -> Conn:
        tls = None
        if key.identity is not None and self.tls is not None:
            tls = TlsSession(self.tls.client, server_side=False, server_hostname=key.identity)
        return await connect(key.address, timeout=self.config.timeouts.connect, tls=tls)

    async def handle(self, conn: Conn) -> None:
        """Serve one accepted connection until it ends."""
        sock = conn.socket
        if sock is None:
            return
        try:
            target = self.original_destination(sock)
        except OSError as e:
            log.warning(
                "outbound connection from %s without original destination: %s", conn.peer, e
            )
            return
        if target == conn.local:
            # not redirected: forwarding it would connect the proxy to itself, without end
            log.info(
                "outbound connection from %s to the proxy's own port %s refused", conn.peer, target
            )
            return
        detector = Detector(self.clock(), self.config.timeouts.detect)
        detected = await detect_protocol(conn, detector, self.clock)
        if detector.abandoned:
            return
        destination = self.destinations.get(str(target))
        src_labels = (
            ("direction", "outbound"),
            ("peer", "src"),
            ("target_addr", str(target)),
            ("target_ip", target.host),
            ("target_port", str(target.port)),
            *_LOOPBACK_LABELS,
        )
        tcp = self.metrics.tcp(src_labels)
        tcp.opened()
        conn.meter = tcp
        opened = self.clock()
        try:
            if isinstance(detected, Http1):
                router = _Router(self, destination, target, conn.peer)
                await serve_http(
                    conn,
                    Http1Session(Direction.OUTBOUND),
                    router,
                    self.pool,
                    clock=self.clock,
                    response_timeout=self.config.timeouts.response,
                    request_head=self.config.timeouts.request_head,
                    idle=self.config.timeouts.http_idle,
                )
            else:
                await self.serve_opaque(conn, destination, target)
        finally:
            tcp.closed(self.clock() - opened)

    async def serve_opaque(self, conn: Conn, destination: Destination, target: Address) -> None:
        """Splice ``conn`` to an endpoint of ``destination`` (the gateway reuses it).

        A gateway endpoint (one with an ``authority_override``, reached over
        mTLS) first gets a transport header naming the remote service.
        """
        deadline = self.clock() + self.config.timeouts.failfast
        while True:
            choice = await self.destinations.choose(destination, deadline)
            if choice.failure is not None:
                log.info("outbound TCP to %s: %s", target, choice.failure)
                return
            key, tls = self.key_for(choice.endpoint, target)
            lease, balancer = choice.lease, choice.balancer
            try:
                upstream = await self._connect(key)
            except (OSError, TimeoutError, HandshakeError) as e:
                log.info("outbound TCP to %s failed: %s", key.address, e)
                if lease is None or balancer is None:
                    return
                now = self.clock()
                balancer.fail(lease, now, unready_until=now + self.config.timeouts.connect_backoff)
                deadline = now
                continue
            if lease is not None and balancer is not None:
                balancer.finish(lease, self.clock())
            break
        dst = choice.endpoint.labels if choice.endpoint is not None else ()
        labels = (
            ("direction", "outbound"),
            ("peer", "dst"),
            ("target_addr", str(key.address)),
            ("target_ip", key.address.host),
            ("target_port", str(key.address.port)),
            *tls.labels(Direction.OUTBOUND),
            *((f"dst_{k}", v) for k, v in dst),
        )
        tcp = self.metrics.tcp(labels)
        tcp.opened()
        upstream.meter = tcp
        opened = self.clock()
        try:
            override = choice.endpoint.authority_override if choice.endpoint else None
            if override is not None and key.identity is not None:
                upstream.write(transport_header.encode(override))
            await splice(conn, upstream)
        finally:
            tcp.closed(self.clock() - opened)
            await upstream.aclose()

    async def close(self) -> None:
        """Close pooled connections."""
        await self.pool.close()
