"""The proxy process's event loop: uvloop (libuv) when it is installed, else asyncio's own.

Rules:
- The proxy's I/O layer is plain asyncio, so either loop runs it unchanged;
  uvloop only makes the loop itself (readiness polling, callbacks, timers and
  socket writes) cheaper.
- ``ISTHMUS_PROXY_EVENT_LOOP=asyncio`` forces the standard loop (to compare, or
  if uvloop misbehaves on some platform); ``uvloop`` requires uvloop and fails
  loudly without it; unset means uvloop if importable.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["ENV", "loop_factory", "loop_name", "run"]

ENV = "ISTHMUS_PROXY_EVENT_LOOP"

T = TypeVar("T")


def loop_factory(
    environ: dict[str, str] | os._Environ[str] = os.environ,
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """How to make the proxy's loop (``None``: asyncio's default). Raises on a bad setting."""
    choice = environ.get(ENV, "").strip().lower()
    if choice not in ("", "uvloop", "asyncio"):
        raise ValueError(f"{ENV}={choice!r}: expected 'uvloop' or 'asyncio'")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``uvloop`` or ``asyncio``: the loop ``run`` would use."""
    return "asyncio" if loop_factory(environ) is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the proxy's loop (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
