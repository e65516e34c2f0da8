"""The inbound side (port 4143): traffic redirected to the pod, delivered to the app.

Per connection:
1. The original destination gives the target port (a connection whose original
   destination is the listener itself was not redirected: refused, since
   forwarding it would loop through the proxy without end); the policy source gives
   that port's server.
2. Detection: a TLS ClientHello naming the local identity is terminated with
   the workload certificate (the client's identity is verified against the
   trust anchors); any other TLS is passed through untouched as opaque. Then,
   inside or without TLS, HTTP/1 vs opaque, unless the server says opaque.
3. HTTP: authorized per request (403 when denied), ``l5d-client-id`` set to the
   verified identity, forwarded over pooled connections to
   ``app_host:<target port>``. Opaque: authorized once; a denied connection is
   closed, an allowed one spliced to the app.

In gateway mode such a direct connection (to the listener itself) is not
refused: it goes to the gateway (``gateway_inbound``) right after detection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mesh.proxy.config import ProxyConfig
from mesh.proxy.connection import Conn, connect, detect_protocol, splice
from mesh.proxy.detect import Detected, Detector, Http1, Tls
from mesh.proxy.discovery import Address
from mesh.proxy.exchange import Exchange
from mesh.proxy.forwarding import Forward, Respond, serve_http
from mesh.proxy.gateway_inbound import GatewayInbound
from mesh.proxy.http1 import Http1Session, LocalResponse, RequestHead
from mesh.proxy.origdst import OriginalDestination
from mesh.proxy.policy import Allow, Client, PolicySource, ProxyProtocol, Server, authorize
from mesh.proxy.pool import ConnectionPool, PoolKey
from mesh.proxy.tap import Peer, RequestInfo, TapHub
from mesh.proxy.telemetry import Direction, InboundLabels, NoTls, ProxyMetrics, TlsStatus
from mesh.proxy.tls import HandshakeError, TlsSession, TlsStore

__all__ = ["Inbound"]

log = logging.getLogger(__name__)

_OPAQUE_PROTOCOLS = (ProxyProtocol.OPAQUE, ProxyProtocol.TLS)


class _Router:
    """Authorizes each request of one connection (with the port's current policy)."""

    def __init__(
        self,
        inbound: Inbound,
        server: Server,
        client: Client,
        labels: InboundLabels,
        source: Peer,
        target: Address,
    ) -> None:
        self.inbound = inbound
        self.server = server
        self.client = client
        self.labels = labels
        self.source = source
        self.target = target
        self.app = PoolKey(Address(inbound.config.app_host, target.port))

    def _current(self) -> tuple[Server, InboundLabels]:
        server = self.inbound.policy.server(self.target.port)
        if server is not self.server:
            self.server = server
            self.labels = InboundLabels(self.inbound.metrics, self.target, self.labels.tls, server)
        return server, self.labels

    def _info(self, head: RequestHead, server: Server) -> Callable[[], RequestInfo]:
        def info() -> RequestInfo:
            destination = Peer(self.target, (("srv_name", server.name),))
            return RequestInfo(
                self.inbound.tap.next_id(),
                Direction.INBOUND,
                self.source,
                destination,
                head.method,
                "http",
                head.authority,
                head.path,
            )

        return info

    def route_now(self, head: RequestHead) -> Forward | Respond | None:
        """``route`` when the request is denied or an idle connection to the app is pooled."""
        server, _ = self._current()
        decision = authorize(server, self.client, method=head.method, path=head.path)
        if not isinstance(decision, Allow):
            return self._deny(head)
        upstream = self.inbound.pool.acquire_idle(self.app)
        if upstream is None:
            return None
        return Forward(upstream, self._allow(head, decision))

    def _deny(self, head: RequestHead) -> Respond:
        server, labels = self._current()
        labels.http_denied()
        stats = labels.http(head.authority, None)
        tap = self.inbound.tap
        info = self._info(head, server) if tap.active else None
        exchange = Exchange(self.inbound.clock(), stats, tap, info)
        return Respond(LocalResponse.forbidden(), exchange)

    def _allow(self, head: RequestHead, decision: Allow) -> Exchange:
        server, labels = self._current()
        labels.http_allowed(decision)
        stats = labels.http(head.authority, decision.authorization)
        tap = self.inbound.tap
        info = self._info(head, server) if tap.active else None
        return Exchange(self.inbound.clock(), stats, tap, info)

    async def route(self, head: RequestHead) -> Forward | Respond:
        inbound = self.inbound
        server, _ = self._current()
        decision = authorize(server, self.client, method=head.method, path=head.path)
        if not isinstance(decision, Allow):
            return self._deny(head)
        exchange = self._allow(head, decision)
        try:
            upstream = await inbound.pool.acquire(self.app)
        except TimeoutError:
            return Respond(
                LocalResponse.gateway_timeout("connecting to the app timed out"), exchange
            )
        except OSError as e:
            return Respond(
                LocalResponse.bad_gateway(f"connecting to the app failed: {e}"), exchange
            )
        return Forward(upstream, exchange)


class Inbound:
    """Handles connections accepted on the inbound port."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        policy: PolicySource,
        tls: TlsStore | None,
        metrics: ProxyMetrics,
        tap: TapHub,
        original_destination: OriginalDestination,
        clock: Callable[[], float],
        gateway: GatewayInbound | None = None,
    ) -> None:
        self.config = config
        self.gateway = gateway
        """Serves direct connections (to the inbound port itself) when gateway mode is on."""
        self.policy = policy
        self.tls = tls
        self.metrics = metrics
        self.tap = tap
        self.original_destination = original_destination
        self.clock = clock
        timeouts = config.timeouts
        self.pool = ConnectionPool(
            self._connect_app,
            clock=clock,
            idle_timeout=timeouts.pool_idle,
            max_idle=config.pool_max_idle,
        )

    async def _connect_app(self, key: PoolKey) -> Conn:
        return await connect(key.address, timeout=self.config.timeouts.connect)

    async def handle(self, conn: Conn) -> None:
        """Serve one accepted connection until it ends."""
        sock = conn.socket
        if sock is None:
            return
        try:
            target = self.original_destination(sock)
        except OSError as e:
            if self.gateway is None:
                log.warning(
                    "inbound connection from %s without original destination: %s", conn.peer, e
                )
                return
            target = conn.local  # not redirected: addressed to the proxy directly
        direct = target.port == conn.local.port
        if direct and self.gateway is None:
            # delivering it to app_host:<inbound port> would be the proxy itself, without end
            log.info("direct connection from %s to the inbound port refused", conn.peer)
            return
        timeouts = self.config.timeouts
        detector = Detector(self.clock(), timeouts.detect)
        detected = await detect_protocol(conn, detector, self.clock)
        if detector.abandoned:
            return
        if direct and self.gateway is not None:
            await self.gateway.handle(conn, target, detected)
            return
        server = self.policy.server(target.port)
        tls = self._no_tls()
        if isinstance(detected, Tls) and self.tls is not None and detected.sni == self.tls.identity:
            session = TlsSession(self.tls.server, server_side=True)
            try:
                async with asyncio.timeout(timeouts.handshake):
                    await conn.start_tls(session, self.tls.anchors)
            except (HandshakeError, TimeoutError, ConnectionError, OSError) as e:
                log.info("inbound TLS from %s refused: %s", conn.peer, e)
                return
            tls = TlsStatus(session.peer) if session.peer else TlsStatus(None)
            if server.protocol not in _OPAQUE_PROTOCOLS:
                detected = await detect_protocol(
                    conn, Detector(self.clock(), timeouts.detect), self.clock
                )
        client = Client.of(tls.identity, conn.peer.host)
        labels = InboundLabels(self.metrics, target, tls, server)
        tcp = labels.tcp()
        tcp.opened()
        conn.meter = tcp
        opened = self.clock()
        try:
            if self._is_http(detected, server):
                await self._serve_http(conn, server, client, labels, tls, target)
            else:
                await self._serve_opaque(conn, server, client, labels, target)
        finally:
            tcp.closed(self.clock() - opened)

    def _no_tls(self) -> TlsStatus:
        return TlsStatus(reason=NoTls.DISABLED if self.tls is None else NoTls.NO_TLS_FROM_REMOTE)

    @staticmethod
    def _is_http(detected: Detected, server: Server) -> bool:
        return isinstance(detected, Http1) and server.protocol not in _OPAQUE_PROTOCOLS

    async def _serve_http(
        self,
        conn: Conn,
        server: Server,
        client: Client,
        labels: InboundLabels,
        tls: TlsStatus,
        target: Address,
    ) -> None:
        metadata: tuple[tuple[str, str], ...] = (
            (("tls", "true"), ("client_id", tls.identity or ""))
            if tls.secured
            else (("tls", "no_identity"),)
        )
        source = Peer(conn.peer, metadata)
        router = _Router(self, server, client, labels, source, target)
        session = Http1Session(Direction.INBOUND, client_id=tls.identity)
        await serve_http(
            conn,
            session,
            router,
            self.pool,
            clock=self.clock,
            response_timeout=self.config.timeouts.response,
            request_head=self.config.timeouts.request_head,
            idle=self.config.timeouts.http_idle,
        )

    async def _serve_opaque(
        self, conn: Conn, server: Server, client: Client, labels: InboundLabels, target: Address
    ) -> None:
        decision = authorize(server, client)
        if not isinstance(decision, Allow):
            labels.tcp_denied()
            log.info("inbound TCP from %s to port %d denied", conn.peer, target.port)
            return
        labels.tcp_allowed(decision)
        app = Address(self.config.app_host, target.port)
        try:
            upstream = await connect(app, timeout=self.config.timeouts.connect)
        except (OSError, TimeoutError) as e:
            log.info("inbound TCP to %s failed: %s", app, e)
            return
        try:
            await splice(conn, upstream)
        finally:
            await upstream.aclose()

    async def close(self) -> None:
        """Close pooled connections to the app."""
        await self.pool.close()
