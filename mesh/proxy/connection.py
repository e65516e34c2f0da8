"""Byte streams for the asyncio layer: a socket, optionally through TLS, and splicing two.

``Conn`` is the one interface the drivers use, whatever is underneath: replayed
bytes from protocol detection first, then the socket; with a ``TlsSession``,
ciphertext is decrypted on the way in and encrypted on the way out. A half
close (``write_eof``) is a TCP FIN, also under TLS (peers ignore the missing
close_notify), so opaque protocols that half-close keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from cryptography import x509

from mesh.proxy.detect import Detected, Detector, NeedMore, Outcome
from mesh.proxy.discovery import Address
from mesh.proxy.origdst import SocketLike
from mesh.proxy.telemetry import TcpStats
from mesh.proxy.tls import HandshakeError, TlsSession

__all__ = ["READ_SIZE", "Conn", "connect", "detect_protocol", "splice"]

READ_SIZE = 64 * 1024


def _address(sockname: object) -> Address:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return Address(str(sockname[0]), int(sockname[1]))
    return Address("unknown", 0)


class Conn:
    """One connection's byte stream (see the module docstring)."""

    __slots__ = ("_eof_sent", "_initial", "_plain", "_reader", "_writer", "meter", "tls")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        initial: bytes = b"",
        tls: TlsSession | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._initial = initial
        self._plain = b""
        self._eof_sent = False
        self.tls = tls
        self.meter: TcpStats | None = None
        """Counts bytes read and written, when set."""

    def unread(self, data: bytes) -> None:
        """Make ``data`` the next bytes ``read`` returns (bytes peeked by detection)."""
        if not data:
            return
        if self.tls is None:
            self._initial = data + self._initial
        else:
            self._plain = data + self._plain

    @property
    def socket(self) -> SocketLike | None:
        """The underlying socket (for ``SO_ORIGINAL_DST``)."""
        sock: SocketLike | None = self._writer.get_extra_info("socket")
        return sock

    @property
    def peer(self) -> Address:
        """The remote address."""
        return _address(self._writer.get_extra_info("peername"))

    @property
    def local(self) -> Address:
        """The local address."""
        return _address(self._writer.get_extra_info("sockname"))

    @property
    def at_eof(self) -> bool:
        """Whether the peer has closed and everything it sent has been read."""
        return not self._initial and not self._plain and self._reader.at_eof()

    @property
    def closing(self) -> bool:
        """Whether the connection is closed or closing."""
        return self._writer.is_closing()

    async def _raw(self) -> bytes:
        if self._initial:
            data, self._initial = self._initial, b""
            return data
        return await self._reader.read(READ_SIZE)

    async def start_tls(
        self, tls: TlsSession, anchors: list[x509.Certificate] | None = None
    ) -> None:
        """Run the TLS handshake over this connection; its bytes go through ``tls`` after."""
        roots = anchors
        while True:
            done = tls.handshake(roots)
            out = tls.outgoing()
            if out:
                self._writer.write(out)
            if done:
                break
            data = await self._raw()
            tls.feed(data)
            if not data:
                tls.handshake(roots)
                raise HandshakeError("the peer closed the connection during the handshake")
        await self._writer.drain()
        self.tls = tls

    async def read(self) -> bytes:
        """The next bytes received; ``b""`` once the peer has finished sending."""
        data = await self._read()
        if self.meter is not None and data:
            self.meter.read(len(data))
        return data

    async def _read(self) -> bytes:
        tls = self.tls
        if tls is None:
            return await self._raw()
        if self._plain:
            data, self._plain = self._plain, b""
            return data
        while True:
            plain, eof = tls.read()
            out = tls.outgoing()
            if out:
                self._writer.write(out)
            if plain:
                return plain
            if eof:
                return b""
            tls.feed(await self._raw())

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (call ``drain`` for back-pressure)."""
        if self._eof_sent or self._writer.is_closing():
            raise ConnectionResetError("the connection is closed for writing")
        if self.meter is not None:
            self.meter.wrote(len(data))
        if self.tls is not None:
            data = self.tls.write(data)
        self._writer.write(data)

    async def drain(self) -> None:
        """Wait until the write buffer is small enough."""
        await self._writer.drain()

    def write_eof(self) -> None:
        """Finish sending (a TCP half close)."""
        if self._eof_sent or self._writer.is_closing():
            return
        self._eof_sent = True
        if self._writer.can_write_eof():
            self._writer.write_eof()

    def close(self) -> None:
        """Close now (idempotent)."""
        self._writer.close()

    async def aclose(self) -> None:
        """Close and wait until the socket is released."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


async def connect(
    address: Address,
    *,
    timeout: float,
    tls: TlsSession | None = None,
) -> Conn:
    """Connect to ``address`` (and complete the TLS handshake) within ``timeout``.

    Raises ``TimeoutError``, ``OSError`` or ``HandshakeError``.
    """
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(address.host, address.port)
        conn = Conn(reader, writer)
        if tls is not None:
            try:
                await conn.start_tls(tls)
            except BaseException:
                await conn.aclose()
                raise
        return conn


async def detect_protocol(conn: Conn, detector: Detector, clock: Callable[[], float]) -> Detected:
    """Read until ``detector`` knows the protocol (or its deadline passes), then unread."""
    outcome: Outcome = NeedMore(detector.deadline)
    while isinstance(outcome, NeedMore):
        remaining = outcome.deadline - clock()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                data = await conn.read()
        except TimeoutError:
            outcome = detector.expire(max(clock(), detector.deadline))
        except (ConnectionError, OSError):
            outcome = detector.feed(b"", clock())
        else:
            outcome = detector.feed(data, clock())
    conn.unread(detector.buffered)
    return outcome


async def splice(
    a: Conn,
    b: Conn,
    *,
    a_read: Callable[[int], None] | None = None,
    b_read: Callable[[int], None] | None = None,
) -> None:
    """Copy bytes both ways until both sides have finished; counts each side's reads.

    Each direction half-closes its destination when its source finishes. An
    error on either side ends both.
    """

    async def pump(src: Conn, dst: Conn, count: Callable[[int], None] | None) -> None:
        while True:
            data = await src.read()
            if not data:
                dst.write_eof()
                return
            if count is not None:
                count(len(data))
            dst.write(data)
            await dst.drain()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(pump(a, b, a_read))
            group.create_task(pump(b, a, b_read))
    except* (ConnectionError, OSError):
        pass
