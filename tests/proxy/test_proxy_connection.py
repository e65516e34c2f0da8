"""``Conn``: the socket protocol's two ways of delivering bytes, and splicing, on real sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from mesh.proxy.connection import Conn, connect, splice
from mesh.proxy.discovery import Address
from tests.proxy.proxy_support import LOOPBACK, port_of

DEADLINE = 5.0
"""Seconds any step here may take."""


async def accepted_connection() -> tuple[
    asyncio.Server, Conn, asyncio.StreamReader, asyncio.StreamWriter
]:
    """A ``Conn`` connected to a plain asyncio stream (the peer the test drives), and its server."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_accept, LOOPBACK, 0)
    conn = await connect(Address(LOOPBACK, port_of(server)), timeout=DEADLINE)
    reader, writer = await asyncio.wait_for(accepted.get(), DEADLINE)
    return server, conn, reader, writer


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Conn, asyncio.StreamReader, asyncio.StreamWriter]]:
    server, conn, reader, writer = await accepted_connection()
    yield conn, reader, writer
    writer.close()
    await conn.aclose()
    server.close()
    await server.wait_closed()


class Received:
    """A sink that keeps what it is given and wakes whoever waits for it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._changed = asyncio.Event()

    def __call__(self, data: bytes) -> None:
        self.chunks.append(data)
        self._changed.set()

    async def until(self, condition: Callable[[list[bytes]], bool], what: str) -> None:
        """Wait for ``condition`` of the chunks, or fail saying ``what`` did not happen."""
        try:
            async with asyncio.timeout(DEADLINE):
                while not condition(self.chunks):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not within {DEADLINE}s: {what} ({self.chunks})") from None


async def test_read_returns_unread_bytes_first_then_the_socket_then_the_end(
    peer: tuple[Conn, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    conn, _, writer = peer
    writer.write(b"world")
    conn.unread(b"hello ")
    got = b""
    async with asyncio.timeout(DEADLINE):
        while len(got) < len(b"hello world"):
            got += await conn.read()
    assert got == b"hello world"
    writer.write_eof()
    assert await asyncio.wait_for(conn.read(), DEADLINE) == b""
    assert conn.at_eof


async def test_a_sink_gets_what_was_buffered_then_new_bytes_then_the_end(
    peer: tuple[Conn, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    conn, _, writer = peer
    conn.unread(b"early ")
    received = Received()
    conn.set_sink(received)
    assert received.chunks == [], "set_sink must not deliver from inside the call"
    writer.write(b"late")
    await writer.drain()
    await received.until(lambda c: b"".join(c) == b"early late", "all bytes delivered")
    writer.write_eof()
    await received.until(lambda c: c[-1:] == [b""], "the end delivered as b''")
    assert received.chunks.count(b"") == 1, f"the end must come once: {received.chunks}"
    with pytest.raises(RuntimeError, match="sink"):
        await conn.read()


async def test_paused_reading_holds_bytes_back_until_resumed(
    peer: tuple[Conn, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    conn, _, writer = peer
    received = Received()
    conn.set_sink(received)
    conn.pause_reading()
    writer.write(b"held")
    await writer.drain()
    # a round trip the other way proves the loop ran while the bytes waited in the kernel
    conn.write(b"ping")
    reader = peer[1]
    assert await asyncio.wait_for(reader.readexactly(4), DEADLINE) == b"ping"
    assert received.chunks == []
    conn.resume_reading()
    await received.until(lambda c: b"".join(c) == b"held", "bytes delivered after resuming")


async def test_a_reset_connection_reads_as_an_error(
    peer: tuple[Conn, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    conn, _, writer = peer
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # with a zero linger: a reset, not a FIN

    async def read_all() -> None:
        while await conn.read():
            pass

    with pytest.raises(ConnectionError):
        await asyncio.wait_for(read_all(), DEADLINE)
    assert conn.error is not None


async def test_splice_copies_both_ways_and_half_closes(
    peer: tuple[Conn, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Two connections spliced: each side's bytes and its end reach the other."""
    left, left_reader, left_writer = peer
    server, right, right_reader, right_writer = await accepted_connection()
    counted: list[int] = []
    spliced = asyncio.ensure_future(splice(left, right, a_read=counted.append))
    try:
        left_writer.write(b"to the right")
        left_writer.write_eof()
        assert await asyncio.wait_for(right_reader.read(), DEADLINE) == b"to the right"
        right_writer.write(b"and back")
        right_writer.write_eof()
        assert await asyncio.wait_for(left_reader.read(), DEADLINE) == b"and back"
        await asyncio.wait_for(spliced, DEADLINE)
        assert sum(counted) == len(b"to the right")
    finally:
        spliced.cancel()
        right_writer.close()
        await right.aclose()
        server.close()
        await server.wait_closed()
