"""The proxy process: inbound, outbound and admin listeners around the sans-I/O cores.

``Proxy`` is the only place that binds sockets. Everything it needs from the
outside comes in through its constructor: discovery and policy (the control
plane's clients, or fakes), the TLS store (``None`` runs without identity:
plaintext everywhere, ``tls="disabled"``), and how to learn a connection's
original destination (``SO_ORIGINAL_DST`` by default; tests name targets).
Each wildcard or loopback listener is bound on IPv4 and IPv6 (``listen``).
``start`` may bind some listeners first (the admin port, while the identity
client waits for a certificate) and the rest later. ``ready`` holds once every
listener is bound and the TLS store, if any, has a certificate. ``stop``
closes the listeners, then cancels the connections still open, so nothing
outlives it; ``shutdown`` first lets open connections finish for a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection
from types import TracebackType

from mesh.proxy.admin import Admin
from mesh.proxy.config import ProxyConfig
from mesh.proxy.connection import Conn
from mesh.proxy.discovery import Discovery
from mesh.proxy.gateway import GatewaySettings
from mesh.proxy.gateway_inbound import GatewayInbound
from mesh.proxy.inbound import Inbound
from mesh.proxy.listen import Listener, listen
from mesh.proxy.origdst import OriginalDestination, original_destination
from mesh.proxy.outbound import Outbound
from mesh.proxy.policy import PolicySource
from mesh.proxy.resolve import Destinations
from mesh.proxy.tap import TapHub
from mesh.proxy.tap_server import TapServer
from mesh.proxy.telemetry import ProxyMetrics
from mesh.proxy.tls import TlsCredentials, TlsStore

__all__ = ["LISTENERS", "Proxy"]

log = logging.getLogger(__name__)

Handler = Callable[[Conn], Awaitable[None]]

LISTENERS = ("inbound", "outbound", "admin")


class Proxy:
    """A sidecar proxy; ``async with Proxy(...)`` starts and stops it."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        discovery: Discovery,
        policy: PolicySource,
        tls: TlsStore | None,
        outbound_destination: OriginalDestination = original_destination,
        inbound_destination: OriginalDestination = original_destination,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.tls = tls
        self.metrics = ProxyMetrics()
        self.tap = TapHub()
        self.destinations = Destinations(
            discovery,
            clock=clock,
            rng=rng or random.Random(),
            decay=config.ewma_decay,
            default_rtt=config.ewma_default_rtt,
        )
        self.outbound = Outbound(
            config,
            destinations=self.destinations,
            tls=tls,
            metrics=self.metrics,
            tap=self.tap,
            original_destination=outbound_destination,
            clock=clock,
        )
        gateway = None
        if config.gateway_suffixes:
            gateway = GatewayInbound(
                config,
                GatewaySettings(config.gateway_suffixes),
                tls=tls,
                outbound=self.outbound,
                policy=policy,
                metrics=self.metrics,
                clock=clock,
            )
        self.inbound = Inbound(
            config,
            policy=policy,
            tls=tls,
            metrics=self.metrics,
            tap=self.tap,
            original_destination=inbound_destination,
            clock=clock,
            gateway=gateway,
        )
        self.admin = Admin(self.metrics, ready=self.ready, limits=config.admin)
        self.tap_server: TapServer | None = None
        if tls is not None and config.tap_identities:
            self.tap_server = TapServer(
                self.tap,
                tls,
                frozenset(config.tap_identities),
                capacity=config.tap_capacity,
                handshake=config.timeouts.handshake,
                limits=config.admin,
            )
        self._servers: dict[str, Listener] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._draining = False

    def ready(self) -> bool:
        """Whether the proxy can serve (listening, and with a certificate if it uses one)."""
        listening = not self._draining and all(name in self._servers for name in LISTENERS)
        return listening and (self.tls is None or self.tls.ready)

    def rotate(self, credentials: TlsCredentials) -> None:
        """Use a new certificate for new connections; open ones keep theirs."""
        if self.tls is None:
            raise RuntimeError("this proxy runs without identity")
        self.tls.update(credentials)

    def port(self, name: str) -> int:
        """The bound port of listener ``name`` (``inbound``, ``outbound``, ``admin``)."""
        sockets = self._servers[name].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def inbound_port(self) -> int:
        return self.port("inbound")

    @property
    def outbound_port(self) -> int:
        return self.port("outbound")

    @property
    def admin_port(self) -> int:
        return self.port("admin")

    @property
    def tap_port(self) -> int:
        """The tap port (``KeyError`` when tap is not served)."""
        return self.port("tap")

    async def start(self, names: Collection[str] = (*LISTENERS, "tap")) -> None:
        """Bind and start serving the listeners ``names`` (default all) not yet bound.

        ``tap`` is served only with identity and identities allowed to tap.
        """
        c = self.config
        listeners: list[tuple[str, str, int, Handler]] = [
            ("inbound", c.inbound_host, c.inbound_port, self.inbound.handle),
            ("outbound", c.outbound_host, c.outbound_port, self.outbound.handle),
            ("admin", c.admin_host, c.admin_port, self.admin.handle),
        ]
        if self.tap_server is not None:
            listeners.append(("tap", c.tap_host, c.tap_port, self.tap_server.handle))
        try:
            for name, host, port, handler in listeners:
                if name not in names or name in self._servers:
                    continue
                self._servers[name] = await listen(self._accepting(handler), host, port)
        except BaseException:
            await self.stop()
            raise

    def _accepting(self, handler: Handler) -> Callable[[], Conn]:
        loop = asyncio.get_running_loop()

        def made(conn: Conn) -> None:
            task = loop.create_task(self._serve(handler, conn))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

        return lambda: Conn(on_made=made)

    @staticmethod
    async def _serve(handler: Handler, conn: Conn) -> None:
        try:
            await handler(conn)
        except (ConnectionError, OSError, TimeoutError) as e:
            log.debug("connection from %s ended: %s", conn.peer, e)
        except Exception:
            log.exception("connection from %s failed", conn.peer)
        finally:
            await conn.aclose()

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, give open connections ``grace`` seconds to finish, then ``stop``."""
        self._draining = True
        for server in self._servers.values():
            server.close()
        if self._connections and grace > 0:
            await asyncio.wait(set(self._connections), timeout=grace)
        await self.stop()

    async def stop(self) -> None:
        """Stop listening, end open connections and watches, close pools."""
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in servers:
            await server.wait_closed()
        await self.destinations.close()
        await self.inbound.close()
        await self.outbound.close()

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
