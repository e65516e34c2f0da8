"""The gateway's I/O: direct connections to the inbound port, served through the outbound side.

``GatewayInbound.handle`` takes a connection the inbound side identified as
direct (its original destination is the inbound port itself) and applies
``gateway``'s rules: terminate mTLS with the workload certificate (the client
must present one under the trust anchors), then either read a transport header
(an opaque stream: its target checked, the port's policy applied once, then
spliced to the target through ``Outbound``) or detect HTTP/1 and route each
request by its authority, authorized by the port's policy, through the proxy's
own ``Outbound`` (discovery, balancing, mTLS with this proxy's identity to
meshed targets). The port's policy is the ``Server`` selecting the gateway's
inbound port (``PolicySource``), with the usual inbound authorization metrics.
Refused connections are closed and counted in
``inbound_gateway_refused_total{reason}``; refused requests get a local
response with ``l5d-proxy-error`` (403 from policy without it, as inbound).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mesh.proxy.config import ProxyConfig
from mesh.proxy.connection import Conn, detect_protocol
from mesh.proxy.detect import Detected, Detector, Http1, Tls
from mesh.proxy.discovery import Address
from mesh.proxy.exchange import Exchange
from mesh.proxy.forwarding import Forward, Respond, serve_http
from mesh.proxy.gateway import (
    GatewaySettings,
    Refusal,
    admit_client,
    admit_hello,
    forwarded_header,
    route,
    target,
)
from mesh.proxy.http1 import Http1Session, LocalResponse, RequestHead
from mesh.proxy.outbound import Outbound
from mesh.proxy.policy import Allow, Client, PolicySource, Server, authorize
from mesh.proxy.telemetry import Direction, InboundLabels, ProxyMetrics, TlsStatus
from mesh.proxy.tls import HandshakeError, TlsSession, TlsStore
from mesh.proxy.transport_header import Header, HeaderReader, NeedMore

__all__ = ["GatewayInbound"]

log = logging.getLogger(__name__)


class _GatewayRouter:
    """Routes each request of one admitted connection to a local service."""

    def __init__(
        self,
        gateway: GatewayInbound,
        tls: TlsStore,
        client: str,
        source: Address,
        target: Address,
        server: Server,
        labels: InboundLabels,
    ) -> None:
        self.gateway = gateway
        self.tls = tls
        self.client = client
        self.source = source
        self.target = target
        self.server = server
        self.labels = labels
        self.policy_client = Client.of(client, source.host)

    def _refused(self, head: RequestHead) -> Exchange:
        g = self.gateway
        labels = (
            ("direction", "inbound"),
            ("authority", head.authority),
            ("target_addr", str(self.target)),
            ("target_ip", self.target.host),
            ("target_port", str(self.target.port)),
            *TlsStatus(self.client).labels(Direction.INBOUND),
        )
        return Exchange(g.clock(), g.metrics.http(labels), g.outbound.tap)

    def route_now(self, head: RequestHead) -> None:
        """Always ``route``: the gateway's requests go through the outbound router's waits."""
        return None

    async def route(self, head: RequestHead) -> Forward | Respond:
        g = self.gateway
        server = g.policy.server(self.target.port)
        if server is not self.server:
            self.server = server
            self.labels = InboundLabels(g.metrics, self.target, self.labels.tls, server)
        allowed = authorize(server, self.policy_client, method=head.method, path=head.path)
        if not isinstance(allowed, Allow):
            self.labels.http_denied()
            log.info("gateway request from %s denied by %s", self.client, server.name)
            return Respond(LocalResponse.forbidden(), self._refused(head))
        self.labels.http_allowed(allowed)
        decision = route(head, g.settings, self.tls.identity)
        if not isinstance(decision, Address):
            log.info("gateway request from %s refused: %s", self.client, decision.error)
            return Respond(decision, self._refused(head))
        outbound = g.outbound
        destination = outbound.destinations.get(str(decision))
        routed = await outbound.router(destination, decision, self.source).route(head)
        if isinstance(routed, Forward):
            routed.headers = (forwarded_header(self.tls.identity, self.client),)
        return routed


class GatewayInbound:
    """Serves gateway connections with the proxy's outbound side."""

    def __init__(
        self,
        config: ProxyConfig,
        settings: GatewaySettings,
        *,
        tls: TlsStore | None,
        outbound: Outbound,
        policy: PolicySource,
        metrics: ProxyMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.settings = settings
        self.policy = policy
        self.tls = tls
        self.outbound = outbound
        self.metrics = metrics
        self.clock = clock
        self.refused = metrics.registry.counter(
            "inbound_gateway_refused_total",
            "Total count of connections the multicluster gateway closed unserved.",
        )

    def _refuse(self, conn: Conn, reason: Refusal) -> None:
        log.info("gateway connection from %s refused: %s", conn.peer, reason.value)
        self.refused.inc((("reason", reason.value),))

    async def handle(self, conn: Conn, target: Address, detected: Detected) -> None:
        """Serve one direct connection (already detected as ``detected``) until it ends."""
        store = self.tls
        sni = detected.sni if isinstance(detected, Tls) else None
        refusal = admit_hello(
            tls=isinstance(detected, Tls),
            server_name=sni,
            local_identity=store.identity if store is not None else "",
        )
        if store is None or refusal is not None:
            self._refuse(conn, refusal or Refusal.PLAINTEXT)
            return
        session = TlsSession(store.server, server_side=True)
        timeouts = self.config.timeouts
        try:
            async with asyncio.timeout(timeouts.handshake):
                await conn.start_tls(session, store.anchors)
        except (HandshakeError, TimeoutError, ConnectionError, OSError) as e:
            log.info("gateway TLS from %s failed: %s", conn.peer, e)
            self._refuse(conn, Refusal.HANDSHAKE_FAILED)
            return
        client = session.peer
        refusal = admit_client(client)
        if refusal is not None or client is None:
            self._refuse(conn, refusal or Refusal.NO_CLIENT_IDENTITY)
            return
        server = self.policy.server(target.port)
        labels = InboundLabels(self.metrics, target, TlsStatus(client), server)
        try:
            header = await self._header(conn)
        except TimeoutError:
            self._refuse(conn, Refusal.NOT_HTTP)  # silent: neither HTTP nor a header
            return
        except (ValueError, ConnectionError, OSError) as e:
            log.info("gateway stream from %s refused: %s", client, e)
            self._refuse(conn, Refusal.BAD_TARGET)
            return
        if header is not None:
            await self._serve_opaque(conn, header, client, server, labels)
            return
        inner = await detect_protocol(conn, Detector(self.clock(), timeouts.detect), self.clock)
        if not isinstance(inner, Http1):
            self._refuse(conn, Refusal.NOT_HTTP)
            return
        tcp = labels.tcp()
        tcp.opened()
        conn.meter = tcp
        opened = self.clock()
        router = _GatewayRouter(self, store, client, conn.peer, target, server, labels)
        try:
            await serve_http(
                conn,
                Http1Session(Direction.INBOUND, client_id=None),
                router,
                self.outbound.pool,
                clock=self.clock,
                response_timeout=timeouts.response,
                request_head=timeouts.request_head,
                idle=timeouts.http_idle,
            )
        finally:
            tcp.closed(self.clock() - opened)

    async def _header(self, conn: Conn) -> Header | None:
        """The transport header the stream begins with (``None``: it begins otherwise).

        Raises ``ValueError`` for a malformed one, ``TimeoutError`` when it does
        not arrive within the detection timeout.
        """
        reader = HeaderReader()
        async with asyncio.timeout(self.config.timeouts.detect):
            while True:
                outcome = reader.feed(await conn.read())
                if isinstance(outcome, NeedMore):
                    continue
                if isinstance(outcome, Header):
                    conn.unread(outcome.rest)
                    return outcome
                conn.unread(outcome.data)
                return None

    async def _serve_opaque(
        self, conn: Conn, header: Header, client: str, server: Server, labels: InboundLabels
    ) -> None:
        """Splice an opaque stream to the service its header names, if allowed."""
        decision = target(header.target, self.settings)
        if isinstance(decision, LocalResponse):
            log.info("gateway stream from %s refused: %s", client, decision.error)
            self._refuse(conn, Refusal.BAD_TARGET)
            return
        allowed = authorize(server, Client.of(client, conn.peer.host))
        if not isinstance(allowed, Allow):
            labels.tcp_denied()
            log.info("gateway stream from %s denied by %s", client, server.name)
            self._refuse(conn, Refusal.UNAUTHORIZED)
            return
        labels.tcp_allowed(allowed)
        tcp = labels.tcp()
        tcp.opened()
        conn.meter = tcp
        opened = self.clock()
        try:
            destination = self.outbound.destinations.get(str(decision))
            await self.outbound.serve_opaque(conn, destination, decision)
        finally:
            tcp.closed(self.clock() - opened)
