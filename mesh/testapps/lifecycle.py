"""Starting, stopping and signal handling shared by the test workloads.

A workload starts its listeners, waits for SIGTERM or SIGINT, then stops accepting,
lets in-flight work finish within ``Settings.shutdown_grace`` and returns, so the
process exits 0 the way Kubernetes expects of a well-behaved container.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

from aiohttp import web

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def wait_for_termination() -> signal.Signals:
    """Return the first of SIGTERM / SIGINT that arrives; the handlers are removed after."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(signum: signal.Signals) -> None:
        if not received.done():
            received.set_result(signum)

    for signum in TERMINATING_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await received
    finally:
        for signum in TERMINATING_SIGNALS:
            loop.remove_signal_handler(signum)


@dataclass
class HttpListener:
    """One aiohttp application listening on one address."""

    runner: web.AppRunner
    host: str
    port: int

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), release everything."""
        await self.runner.cleanup()


async def listen_http(
    app: web.Application, host: str, port: int, *, shutdown_grace: float
) -> HttpListener:
    """Serve ``app`` on ``host:port``; port 0 picks a free port, reported in the result."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_grace)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
    except BaseException:
        await runner.cleanup()
        raise
    return HttpListener(runner=runner, host=host, port=int(bound[1]))
