"""Running a control-plane service until it is told to stop (SIGTERM/SIGINT) or its feed ends."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerSettings:
    """The waits of a gRPC service fed by cluster watches (destination, policy), in seconds."""

    sync_timeout: float = 30.0
    """How long a stream waits for the first complete listing before failing UNAVAILABLE."""
    shutdown_grace: float = 5.0
    """How long in-flight RPCs get to finish when the server stops."""


def stop_signal() -> asyncio.Event:
    """An event the running loop sets on SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def serve_until_stopped(
    name: str,
    feed: Coroutine[Any, Any, None],
    stop: Callable[[], Awaitable[None]],
) -> None:
    """Wait for SIGTERM/SIGINT or for ``feed`` (the cluster watch) to end, then ``stop``.

    A feed that failed ends the process with a message naming the service.
    """
    stopping = stop_signal()
    fed = asyncio.create_task(feed)
    told = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({fed, told}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        told.cancel()
        await stop()
    if fed.done() and not fed.cancelled() and fed.exception() is not None:
        raise SystemExit(f"{name}: watching the cluster failed: {fed.exception()}")
