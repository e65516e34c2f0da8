"""mesh.serving and a controller's run (mesh.admin_port): SIGTERM stops them, failures end them."""

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


class FakeAdmin:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def stop(self) -> None:
        self.log.append("admin stopped")


async def test_a_controller_is_cancelled_on_sigterm_then_its_admin_and_client_close() -> None:
    from mesh.admin_port import serve_until_stopped as run_controller

    log: list[str] = []

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("controller cancelled")
            raise

    async def close() -> None:
        log.append("client closed")

    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(5):
        await run_controller("ctl", run(), FakeAdmin(log), close)  # type: ignore[arg-type]
    assert log == ["controller cancelled", "admin stopped", "client closed"]


async def test_a_failed_controller_closes_everything_and_exits_naming_it() -> None:
    from mesh.admin_port import serve_until_stopped as run_controller

    log: list[str] = []

    async def run() -> None:
        raise RuntimeError("lost the API server")

    async def close() -> None:
        log.append("client closed")

    with pytest.raises(SystemExit, match=r"^ctl: lost the API server$"):
        await run_controller("ctl", run(), FakeAdmin(log), close)  # type: ignore[arg-type]
    assert log == ["admin stopped", "client closed"]
