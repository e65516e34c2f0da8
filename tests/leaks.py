"""Leaked asyncio tasks: the shared autouse check for async unit tests (kopf's habit)."""

from __future__ import annotations

import asyncio

#: how long finished-but-unscheduled tasks (e.g. grpc.aio's status handlers after a
#: channel closes) get to complete before they count as leaked.
SETTLE_SECONDS = 1.0


async def assert_no_leaked_tasks() -> None:
    """Fail if any task other than the caller is still running after a short settle."""
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not leaked or loop.time() >= deadline:
            break
        await asyncio.wait(leaked, timeout=deadline - loop.time())
    assert not leaked, f"tasks still running after the test (+{SETTLE_SECONDS}s): {leaked}"
