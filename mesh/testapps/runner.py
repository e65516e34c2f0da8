"""Executes a load run: one HTTP client session, bounded concurrency, one record each.

With ``rate > 0`` every request starts at its due time (open loop) and its latency is
measured from that due time, so waiting for a free slot counts against it rather than
hiding it. With ``rate == 0`` ``concurrency`` workers send back to back and latency is
measured from the send. No request starts after ``Settings.max_run_duration``.
"""

from __future__ import annotations

import asyncio

import aiohttp

from mesh.testapps.loadgen import (
    Record,
    RunResult,
    RunSpec,
    describe_error,
    not_started,
    parse_responder,
    start_offset,
    summarize,
)
from mesh.testapps.settings import SETTINGS, Settings


def error_kind(exc: BaseException) -> str:
    """A short, stable name for why a request failed."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ConnectError"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "Disconnected"
    if isinstance(exc, TimeoutError):
        return "Timeout"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "PayloadError"
    if isinstance(exc, aiohttp.ClientOSError):
        return "ConnectionError"
    return type(exc).__name__


class _Run:
    def __init__(self, spec: RunSpec, session: aiohttp.ClientSession, settings: Settings) -> None:
        self.spec = spec
        self.session = session
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.slots = asyncio.Semaphore(spec.concurrency)
        self.records = [not_started(i, "NotStarted") for i in range(spec.count)]
        self.t0 = self.loop.time()
        self.deadline = self.t0 + settings.max_run_duration

    async def paced(self) -> None:
        async with asyncio.TaskGroup() as group:
            for i in range(self.spec.count):
                due = self.t0 + start_offset(i, self.spec.rate)
                wait = due - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                group.create_task(self.one(i, due))

    async def unpaced(self) -> None:
        indices = iter(range(self.spec.count))

        async def worker() -> None:
            for i in indices:
                await self.one(i, None)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.spec.concurrency, self.spec.count)):
                group.create_task(worker())

    async def one(self, i: int, due: float | None) -> None:
        async with self.slots:
            if self.loop.time() > self.deadline:
                reason = f"run exceeded {self.settings.max_run_duration:g} s"
                self.records[i] = not_started(i, describe_error("Deadline", reason))
                return
            started = self.loop.time() if due is None else due
            self.records[i] = await self.send(i, started)

    def describe(self, exc: Exception) -> str:
        detail = str(exc)
        if not detail and isinstance(exc, TimeoutError):
            detail = f"no answer within {self.spec.timeout:g} s"
        return describe_error(error_kind(exc), detail, self.settings)

    async def send(self, i: int, started: float) -> Record:
        status: int | None = None
        body = b""
        error: str | None = None
        try:
            async with self.session.get(self.spec.url) as response:
                status = response.status
                body = await _read_capped(response, self.settings.max_body_bytes)
        except Exception as exc:  # a record says what went wrong; one failure never ends a run
            error = self.describe(exc)
        latency_ms = (self.loop.time() - started) * 1000
        return {
            "i": i,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "responder": parse_responder(body) if body else None,
            "error": error,
        }


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first ``limit`` bytes when it is longer."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := await response.content.read(limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def execute(spec: RunSpec, settings: Settings = SETTINGS) -> RunResult:
    """Run every request of ``spec`` and return one record per request plus a summary."""
    connector = aiohttp.TCPConnector(
        limit=spec.concurrency,
        use_dns_cache=False,
        resolver=aiohttp.ThreadedResolver(),
    )
    async with aiohttp.ClientSession(
        connector=connector,
        headers=dict(spec.headers),
        timeout=aiohttp.ClientTimeout(total=spec.timeout),
    ) as session:
        run = _Run(spec, session, settings)
        if spec.rate > 0:
            await run.paced()
        else:
            await run.unpaced()
        duration = run.loop.time() - run.t0
    return {"records": run.records, "summary": summarize(run.records, duration)}
