"""List-then-watch of one kind of object through lightkube, as domain events.

The I/O edge for the mesh's controllers: each stream lists every object of a
kind (``Listed``), then watches from that list's resourceVersion (``Upserted`` /
``Deleted``). Any failure of the list or the watch (including 410 Gone) waits a
back-off and lists again, so consumers only ever see complete snapshots plus
changes. Streams end only when cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx2
from lightkube import AsyncClient
from lightkube.core.resource import NamespacedResource

from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent

__all__ = ["WatchSettings", "list_and_watch", "merge"]

_log = logging.getLogger(__name__)

R = TypeVar("R", bound=NamespacedResource)
T = TypeVar("T")


@dataclass(frozen=True)
class WatchSettings:
    """Timing of list-and-watch streams, in seconds."""

    retry_initial: float = 0.5
    """Wait after the first failure before listing again."""
    retry_max: float = 30.0
    """Longest wait between attempts; each failure doubles the wait up to this."""
    server_timeout: int = 300
    """How long the API server keeps one watch request open before lightkube renews it."""


async def list_and_watch(
    client: AsyncClient,
    resource: type[R],
    convert: Callable[[R], T],
    kind: type[T],
    *,
    namespace: str = "*",
    settings: WatchSettings | None = None,
    labels: dict[str, str] | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> AsyncIterator[WatchEvent[T]]:
    """Yield ``Listed`` with every ``resource`` in ``namespace``, then each change, forever.

    ``labels`` restricts the stream to objects carrying all of them. ``on_error`` hears
    each failure before the back-off (to report it); if it raises, the stream ends with
    that error instead of retrying.
    """
    settings = settings or WatchSettings()
    delay = settings.retry_initial
    while True:
        try:
            listing = client.list(resource, namespace=namespace, labels=cast(Any, labels))
            objects = tuple([convert(obj) async for obj in listing])
            version = listing.resourceVersion
            yield Listed(kind, objects)
            delay = settings.retry_initial
            watch = client.watch(
                resource,
                namespace=namespace,
                labels=cast(Any, labels),
                resource_version=version,
                server_timeout=settings.server_timeout,
            )
            async for change, obj in watch:
                if change in ("ADDED", "MODIFIED"):
                    yield Upserted(convert(obj))
                elif change == "DELETED":
                    yield Deleted(convert(obj))
        except httpx2.HTTPError as e:
            _log.warning(
                "watching %s failed (%s); listing again in %.1fs", resource.__name__, e, delay
            )
            if on_error is not None:
                on_error(e)
        await asyncio.sleep(delay)
        delay = min(delay * 2, settings.retry_max)


async def merge(*streams: AsyncIterator[T]) -> AsyncIterator[T]:
    """Yield items from every stream as they come, until all end; a stream's error is raised here.

    Closing the merged stream cancels the ones feeding it.
    """
    queue: asyncio.Queue[tuple[T] | Exception | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[T]) -> None:
        try:
            async for item in stream:
                await queue.put((item,))
        except Exception as e:
            await queue.put(e)
        else:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    running = len(tasks)
    try:
        while running:
            got = await queue.get()
            if got is None:
                running -= 1
            elif isinstance(got, Exception):
                raise got
            else:
                yield got[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
