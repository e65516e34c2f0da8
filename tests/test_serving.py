"""mesh.serving: a service stops on SIGTERM, and a failed cluster feed ends it loudly."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from mesh.serving import serve_until_stopped


async def test_sigterm_stops_the_service() -> None:
    stopped: list[str] = []

    async def feed() -> None:
        await asyncio.Event().wait()  # a watch that never ends by itself

    async def stop() -> None:
        stopped.append("stopped")

    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(5):
        await serve_until_stopped("svc", feed(), stop)
    assert stopped == ["stopped"]


async def test_a_failed_feed_stops_the_service_and_exits_naming_it() -> None:
    stopped: list[str] = []

    async def feed() -> None:
        raise RuntimeError("watch broke")

    async def stop() -> None:
        stopped.append("stopped")

    with pytest.raises(SystemExit, match=r"svc: watching the cluster failed: watch broke"):
        await serve_until_stopped("svc", feed(), stop)
    assert stopped == ["stopped"]
