"""Running a control-plane service: its gRPC server's limits, and serving until told to stop.

Every gRPC server of the mesh is made by ``grpc_server`` so hostile clients cost
only their own connection (SEC-1): a connection must finish its HTTP/2
handshake within ``handshake_timeout``, messages and metadata are bounded, an
idle connection is closed, and dead peers are found by keepalive pings.
Services run until SIGTERM/SIGINT or until their cluster feed ends.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from grpc import aio


@dataclass(frozen=True)
class ServerSettings:
    """The waits of a gRPC service fed by cluster watches (destination, policy), in seconds."""

    sync_timeout: float = 30.0
    """How long a stream waits for the first complete listing before failing UNAVAILABLE."""
    shutdown_grace: float = 5.0
    """How long in-flight RPCs get to finish when the server stops."""
    admin_keepalive: float = 15.0
    """An admin-port (HTTP) connection without a complete request for this long is closed."""


@dataclass(frozen=True)
class GrpcLimits:
    """What one client connection of a control-plane gRPC server may cost (bytes, seconds)."""

    max_message: int = 1024 * 1024
    """The largest request message; a larger one fails RESOURCE_EXHAUSTED."""
    max_metadata: int = 16 * 1024
    """The largest request metadata (headers); larger fails RESOURCE_EXHAUSTED."""
    handshake_timeout: float = 10.0
    """A new connection must complete its HTTP/2 (or TLS) handshake within this."""
    max_concurrent_streams: int = 1000
    """Streams one connection may have open at once (a proxy watches many services)."""
    max_connection_idle: float = 300.0
    """A connection without any RPC for this long is closed (clients reconnect)."""
    keepalive_time: float = 60.0
    """Ping a connection that has been quiet this long, to find dead peers."""
    keepalive_timeout: float = 20.0
    """A ping unanswered for this long closes the connection."""

    def options(self) -> list[tuple[str, int]]:
        """The gRPC channel arguments for these limits."""
        return [
            ("grpc.max_receive_message_length", self.max_message),
            ("grpc.max_metadata_size", self.max_metadata),
            ("grpc.absolute_max_metadata_size", self.max_metadata),
            ("grpc.server_handshake_timeout_ms", _ms(self.handshake_timeout)),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.max_connection_idle_ms", _ms(self.max_connection_idle)),
            ("grpc.keepalive_time_ms", _ms(self.keepalive_time)),
            ("grpc.keepalive_timeout_ms", _ms(self.keepalive_timeout)),
        ]


GRPC_LIMITS = GrpcLimits()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def grpc_server(limits: GrpcLimits = GRPC_LIMITS) -> aio.Server:
    """A ``grpc.aio`` server with ``limits`` applied (add services and ports, then start)."""
    return aio.server(options=limits.options())


def stop_signal() -> asyncio.Event:
    """An event the running loop sets on SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def until_stopped(work: asyncio.Future[None]) -> None:
    """Wait until ``work`` ends or SIGTERM/SIGINT comes, whichever is first."""
    told = asyncio.create_task(stop_signal().wait())
    either: set[asyncio.Future[Any]] = {work, told}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        told.cancel()
        await asyncio.gather(told, return_exceptions=True)


def failure(work: asyncio.Future[None]) -> BaseException | None:
    """What ``work`` failed with, if it ended with an error (not cancelled, not running)."""
    return work.exception() if work.done() and not work.cancelled() else None


async def serve_until_stopped(
    name: str,
    feed: Coroutine[Any, Any, None],
    stop: Callable[[], Awaitable[None]],
) -> None:
    """Wait for SIGTERM/SIGINT or for ``feed`` (the cluster watch) to end, then ``stop``.

    A feed that failed ends the process with a message naming the service.
    """
    fed = asyncio.ensure_future(feed)
    try:
        await until_stopped(fed)
    finally:
        await stop()
    error = failure(fed)
    if error is not None:
        raise SystemExit(f"{name}: watching the cluster failed: {error}")
