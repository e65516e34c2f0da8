"""``isthmus component pause``: the gateway pod's one container, which only waits.

The gateway's work is done by the proxy the injector adds beside it; this
container gives the pod something to run. It sleeps until SIGTERM or SIGINT and
then exits 0, so the pod stops at once instead of after its grace period.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from mesh.serving import stop_signal

__all__ = ["main"]


async def _wait_for_stop() -> None:
    await stop_signal().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Wait for SIGTERM or SIGINT; return 0."""
    parser = argparse.ArgumentParser(
        prog="isthmus component pause",
        description="Sleep until SIGTERM or SIGINT, then exit 0 (the gateway pod's container).",
    )
    parser.parse_args(argv)
    asyncio.run(_wait_for_stop())
    return 0
