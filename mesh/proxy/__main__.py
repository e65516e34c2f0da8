"""``isthmus component proxy`` (or ``python -m mesh.proxy``): the sidecar proxy process.

Configured entirely by its environment (``LINKERD2_PROXY_*``, see
``envconfig``); takes no flags. Exits 2 when the environment is unusable
(every bad variable named on stderr), 1 when a listener cannot be bound, and 0
after SIGTERM or SIGINT: it stops accepting, lets open connections finish for
``LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD`` (2s), and closes the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from mesh.proxy import compiled, eventloop
from mesh.proxy.envconfig import EnvConfig, EnvError, load, log_levels
from mesh.proxy.runtime import ProxyRuntime
from mesh.serving import stop_signal

__all__ = ["main"]

log = logging.getLogger("mesh.proxy")

_PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": self.formatTime(record),
            "level": record.levelname,
            "target": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(env: EnvConfig) -> None:
    """Log to stderr at the levels ``LINKERD2_PROXY_LOG`` asks for."""
    root, loggers = log_levels(env.log)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if env.log_format == "json" else logging.Formatter(_PLAIN)
    )
    logging.basicConfig(level=root, handlers=[handler], force=True)
    for name, level in loggers.items():
        logging.getLogger(name).setLevel(level)


async def serve(env: EnvConfig) -> None:
    """Run the proxy until SIGTERM or SIGINT."""
    stopping = stop_signal()
    runtime = ProxyRuntime(env)
    starting = asyncio.create_task(runtime.start(), name="start")
    stop_requested = asyncio.create_task(stopping.wait(), name="signals")
    try:
        await asyncio.wait({starting, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            await stop_requested
        log.info("shutting down")
    finally:
        for task in (starting, stop_requested):
            task.cancel()
        await asyncio.gather(starting, stop_requested, return_exceptions=True)
        await runtime.stop(env.shutdown_grace)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the proxy from the environment; see the module docstring for exit codes."""
    argparse.ArgumentParser(
        prog="isthmus component proxy",
        description="The mesh's sidecar proxy, configured by LINKERD2_PROXY_* variables.",
    ).parse_args(argv)
    try:
        env = load(os.environ)
    except EnvError as e:
        for problem in e.problems:
            print(f"proxy: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        eventloop.loop_name()
    except (ValueError, ImportError) as e:
        print(f"proxy: {eventloop.ENV}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(env)
    log.info("event loop %s, hot path %s", eventloop.loop_name(), compiled.mode())
    try:
        eventloop.run(serve(env))
    except OSError as e:
        print(f"proxy: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
