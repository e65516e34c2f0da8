"""One upgraded SPDY connection on asyncio: streams as inboxes, writes flushed at once.

The only I/O layer over :class:`~.spdy.SpdyServerSession`. A reader task feeds the
session and routes its events: a newly opened stream lands in :attr:`opened`; its
data, FIN or reset land in that stream's :class:`Inbox`. When the peer goes away or
the socket breaks, every inbox ends and :attr:`opened` yields None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from harness.providers.netns.kubelet.spdy import (
    Event,
    GoAway,
    Headers,
    ProtocolError,
    SpdyServerSession,
    StreamData,
    StreamEnded,
    StreamOpened,
    StreamReset,
)

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024


class Inbox:
    """What the peer sends on one stream: chunks, then None at FIN, reset or disconnect."""

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.reset = False
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._ended = False

    def put(self, data: bytes) -> None:
        if not self._ended:
            self._queue.put_nowait(data)

    def end(self, reset: bool = False) -> None:
        self.reset = self.reset or reset
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(None)

    async def read(self) -> bytes | None:
        """The next chunk, or None once the stream ended (and on every call after)."""
        if self._queue.empty() and self._ended:
            return None
        return await self._queue.get()


class SpdyConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.session = SpdyServerSession()
        self.inboxes: dict[int, Inbox] = {}
        self.opened: asyncio.Queue[Inbox | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                events = self.session.receive(data)
                await self._flush()
                if not self._dispatch(events):
                    break
        except (OSError, ProtocolError, ConnectionError) as e:
            log.debug("spdy connection ends: %s", e)
        finally:
            self._end_all()

    def _dispatch(self, events: list[Event]) -> bool:
        for ev in events:
            if isinstance(ev, StreamOpened):
                inbox = Inbox(ev.stream_id, ev.headers)
                self.inboxes[ev.stream_id] = inbox
                if ev.fin:
                    inbox.end()
                self.opened.put_nowait(inbox)
            elif isinstance(ev, StreamData):
                if (box := self.inboxes.get(ev.stream_id)) is not None:
                    box.put(ev.data)
            elif isinstance(ev, StreamEnded):
                if (box := self.inboxes.get(ev.stream_id)) is not None:
                    box.end()
            elif isinstance(ev, StreamReset):
                if (box := self.inboxes.pop(ev.stream_id, None)) is not None:
                    box.end(reset=True)
            elif isinstance(ev, GoAway):
                return False
        return True

    def _end_all(self) -> None:
        for box in self.inboxes.values():
            box.end(reset=True)
        self.opened.put_nowait(None)
        self.closed.set()

    async def _flush(self) -> None:
        async with self._lock:
            out = self.session.pending()
            if out and not self.writer.is_closing():
                self.writer.write(out)
                await self.writer.drain()

    async def reply(self, stream_id: int) -> None:
        self.session.reply(stream_id)
        await self._flush()

    async def refuse(self, stream_id: int) -> None:
        self.session.refuse(stream_id)
        self.inboxes.pop(stream_id, None)
        await self._flush()

    async def send(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        """Queue ``data`` on a stream and flush; quietly nothing once the peer is gone."""
        self.session.send(stream_id, data, fin)
        with contextlib.suppress(OSError, ConnectionError):
            await self._flush()

    async def end(self, stream_id: int) -> None:
        await self.send(stream_id, b"", fin=True)

    async def reset(self, stream_id: int) -> None:
        self.session.reset(stream_id)
        self.inboxes.pop(stream_id, None)
        with contextlib.suppress(OSError, ConnectionError):
            await self._flush()

    async def next_stream(self, timeout: float | None = None) -> Inbox | None:
        """The next stream the peer opens; None when the connection ended."""
        if self.closed.is_set() and self.opened.empty():
            return None
        if timeout is None:
            return await self.opened.get()
        return await asyncio.wait_for(self.opened.get(), timeout)

    async def close(self) -> None:
        """GOAWAY, then close the socket and stop reading."""
        self.session.goaway()
        with contextlib.suppress(OSError, ConnectionError):
            await self._flush()
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
