"""List-then-watch of one kind of object through lightkube, as domain events.

The I/O edge for the mesh's controllers: each stream lists every object of a
kind (``Listed``), then watches from that list's resourceVersion (``Upserted`` /
``Deleted``). Any failure of the list or the watch (including 410 Gone) waits a
back-off and lists again, so consumers only ever see complete snapshots plus
changes. Streams end only when cancelled.

An object the converter cannot use (any exception from ``convert``) never ends a
stream (SEC-4): it is left out with a warning log line and a Kubernetes Warning
Event naming it (reason ``UnusableObject``). If an object that was usable
becomes unusable, consumers see it ``Deleted`` (its last usable state), so they
never keep acting on a version that no longer exists. Reporting is best effort:
an Event that cannot be written is logged and the watch goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import httpx2
from lightkube import AsyncClient
from lightkube.core.resource import NamespacedResource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent

__all__ = [
    "UNUSABLE_REASON",
    "SkipReporter",
    "WatchSettings",
    "describe",
    "event_reporter",
    "list_and_watch",
    "merge",
]

UNUSABLE_REASON = "UnusableObject"
"""The reason of the Warning Event written for an object a controller cannot use."""

SkipReporter = Callable[[Any, Exception], Awaitable[None]]
"""Told of each object left out (the raw object and the converter's exception)."""

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


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _identity(obj: Any) -> tuple[str, str, str, str, str]:
    """(apiVersion, kind, namespace, name, uid) of a raw object, as far as it says."""
    meta = _field(obj, "metadata")
    return (
        str(_field(obj, "apiVersion") or ""),
        str(_field(obj, "kind") or type(obj).__name__),
        str(_field(meta, "namespace") or ""),
        str(_field(meta, "name") or ""),
        str(_field(meta, "uid") or ""),
    )


def describe(obj: Any) -> str:
    """``Kind namespace/name`` of a raw object (whatever of it can be read)."""
    _, kind, namespace, name, _ = _identity(obj)
    where = f"{namespace}/{name}" if namespace else name or "<unnamed>"
    return f"{kind} {where}"


def event_reporter(client: AsyncClient, component: str) -> SkipReporter:
    """Report a skipped object as a Warning Event on it, written by ``component``."""

    async def report(obj: Any, error: Exception) -> None:
        api_version, kind, namespace, name, uid = _identity(obj)
        now = datetime.now(UTC)
        event = Event(
            metadata=ObjectMeta(
                generateName=f"{name or 'object'}.", namespace=namespace or "default"
            ),
            involvedObject=ObjectReference(
                apiVersion=api_version or None,
                kind=kind,
                name=name or None,
                namespace=namespace or None,
                uid=uid or None,
            ),
            reason=UNUSABLE_REASON,
            message=f"{component} skips this object: {_error(error)}"[:1024],
            type="Warning",
            source=EventSource(component=component),
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        await client.create(event)

    return report


def _error(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Converter(Generic[T]):
    """``convert`` that skips (and reports) what it cannot use; remembers the last usable."""

    def __init__(
        self, convert: Callable[[Any], T], resource: str, report: SkipReporter | None
    ) -> None:
        self.convert = convert
        self.resource = resource
        self.report = report
        self.known: dict[tuple[str, str], T] = {}

    @staticmethod
    def key(obj: Any) -> tuple[str, str]:
        _, _, namespace, name, _ = _identity(obj)
        return namespace, name

    async def __call__(self, obj: Any) -> T | None:
        try:
            converted = self.convert(obj)
        except Exception as e:
            _log.warning(
                "%s: skipping %s, which cannot be used: %s", self.resource, describe(obj), _error(e)
            )
            if self.report is not None:
                try:
                    await self.report(obj, e)
                except Exception as report_error:
                    _log.warning(
                        "cannot record an Event for %s: %s", describe(obj), _error(report_error)
                    )
            return None
        return converted


async def list_and_watch(
    client: AsyncClient,
    resource: type[R],
    convert: Callable[[R], T],
    kind: type[T],
    *,
    namespace: str = "*",
    settings: WatchSettings | None = None,
    report: SkipReporter | None = None,
    labels: dict[str, str] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    fields: dict[str, str] | None = None,
) -> AsyncIterator[WatchEvent[T]]:
    """Yield ``Listed`` with every ``resource`` in ``namespace``, then each change, forever.

        Objects ``convert`` fails on are skipped and told to ``report`` (see the module
        docstring; ``event_reporter`` writes Events). ``labels`` restricts the stream to
        objects carrying all of them, ``fields`` to objects whose fields match (a field
    selector). ``on_error`` hears each transport failure before the
        back-off (to report it); if it raises, the stream ends with that error instead of
        retrying.
    """
    settings = settings or WatchSettings()
    delay = settings.retry_initial
    converter: _Converter[T] = _Converter(convert, resource.__name__, report)
    known = converter.known
    while True:
        try:
            listing = client.list(
                resource, namespace=namespace, labels=cast(Any, labels), fields=cast(Any, fields)
            )
            known.clear()
            async for raw in listing:
                converted = await converter(raw)
                if converted is not None:
                    known[converter.key(raw)] = converted
            version = listing.resourceVersion
            yield Listed(kind, tuple(known.values()))
            delay = settings.retry_initial
            watch = client.watch(
                resource,
                namespace=namespace,
                labels=cast(Any, labels),
                fields=cast(Any, fields),
                resource_version=version,
                server_timeout=settings.server_timeout,
            )
            async for change, raw in watch:
                key = converter.key(raw)
                if change in ("ADDED", "MODIFIED"):
                    converted = await converter(raw)
                    if converted is not None:
                        known[key] = converted
                        yield Upserted(converted)
                    elif key in known:
                        yield Deleted(known.pop(key))
                elif change == "DELETED" and key in known:
                    # its last usable state: the final one need not convert
                    yield Deleted(known.pop(key))
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
