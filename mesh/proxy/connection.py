"""Byte streams for the asyncio layer: a socket, optionally through TLS, and splicing two.

``Conn`` is the one interface the drivers use, whatever is underneath. It is
the socket's ``asyncio.Protocol`` itself: no stream reader, no task per read.
Received bytes (decrypted first when a ``TlsSession`` is on) go one of two ways:
- to a *sink* (``set_sink``), a callback called with each chunk as it arrives
  and with ``b""`` once the peer has finished; the HTTP driver and ``splice``
  work this way, so the hot path is callbacks only;
- otherwise into a buffer that ``await read()`` drains (detection, handshakes,
  admin and tap requests).
Bytes put back with ``unread`` (what detection peeked) come first either way.
A half close (``write_eof``) is a TCP FIN, also under TLS (peers ignore the
missing close_notify), so opaque protocols that half-close keep working.
Back-pressure: ``writing_paused`` is set while the socket's send buffer is
over its high-water mark and ``on_drained`` is called when it empties;
``pause_reading``/``resume_reading`` stop and restart delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import cast

from cryptography import x509

from mesh.proxy.detect import Detected, Detector, NeedMore, Outcome
from mesh.proxy.discovery import Address
from mesh.proxy.origdst import SocketLike
from mesh.proxy.telemetry import TcpStats
from mesh.proxy.tls import HandshakeError, TlsSession

__all__ = ["READ_SIZE", "Conn", "Sink", "connect", "detect_protocol", "splice"]

READ_SIZE = 64 * 1024
"""Largest chunk one ``read`` returns."""

Sink = Callable[[bytes], None]
"""Called with received bytes; ``b""`` once the peer has finished sending (or is gone)."""


def _address(sockname: object) -> Address:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return Address(str(sockname[0]), int(sockname[1]))
    return Address("unknown", 0)


class Conn(asyncio.Protocol):
    """One connection's byte stream (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_drain",
        "_eof",
        "_eof_delivered",
        "_eof_sent",
        "_error",
        "_on_made",
        "_paused",
        "_sink",
        "_transport",
        "_waiter",
        "meter",
        "on_drained",
        "tls",
        "writing_paused",
    )

    def __init__(
        self,
        *,
        initial: bytes = b"",
        tls: TlsSession | None = None,
        on_made: Callable[[Conn], None] | None = None,
    ) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray(initial)
        self._eof = False
        """The peer has finished sending (all it sent is in the buffer or delivered)."""
        self._eof_delivered = False
        self._eof_sent = False
        self._error: BaseException | None = None
        self._sink: Sink | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._paused = False
        self._on_made = on_made
        self.tls = tls
        self.meter: TcpStats | None = None
        """Counts bytes read and written, when set."""
        self.writing_paused = False
        """The send buffer is over its high-water mark: stop producing until ``on_drained``."""
        self.on_drained: Callable[[], None] | None = None
        """Called (once) when a paused send buffer has drained."""

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self._closed = asyncio.get_running_loop().create_future()
        on_made, self._on_made = self._on_made, None
        if on_made is not None:
            on_made(self)

    def data_received(self, data: bytes) -> None:
        tls = self.tls
        if tls is not None:
            tls.feed(data)
            try:
                data, eof = tls.read()
            except ConnectionResetError as e:
                data, eof = b"", True
                self._error = e
            out = tls.outgoing()
            if out and self._transport is not None and not self._transport.is_closing():
                self._transport.write(out)
            if not data:
                if eof:
                    self._eof = True
                    self._deliver_eof()
                return
            if eof:
                self._receive(data)
                self._eof = True
                self._deliver_eof()
                return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        sink = self._sink
        if sink is not None and not self._buffer:
            if self.meter is not None:
                self.meter.read(len(data))
            sink(data)
            return
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        if self.tls is not None:
            self.tls.feed(b"")
        self._eof = True
        self._deliver_eof()
        return True  # keep the socket open for writing: a half close

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._error is None:
            self._error = exc
        self._eof = True
        self._deliver_eof()
        self._wake()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("the connection was closed"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self.writing_paused = False
        self._call_drained()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)
        self._call_drained()

    def _call_drained(self) -> None:
        callback, self.on_drained = self.on_drained, None
        if callback is not None:
            callback()

    # --- delivery ----------------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _deliver_eof(self) -> None:
        if self._sink is not None and not self._buffer and not self._eof_delivered:
            self._eof_delivered = True
            self._sink(b"")
        else:
            self._wake()

    def set_sink(self, sink: Sink | None) -> None:
        """Deliver received bytes to ``sink`` from now on (``None``: back to ``read``).

        Bytes already buffered (and an end already seen) are delivered soon after,
        never from inside this call.
        """
        self._sink = sink
        if sink is not None and (self._buffer or (self._eof and not self._eof_delivered)):
            asyncio.get_running_loop().call_soon(self._flush, sink)

    def _flush(self, sink: Sink) -> None:
        if self._sink is not sink:
            return
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            if self.meter is not None:
                self.meter.read(len(data))
            sink(data)
        if self._eof and self._sink is sink and not self._eof_delivered and not self._buffer:
            self._eof_delivered = True
            sink(b"")

    def pause_reading(self) -> None:
        """Stop receiving until ``resume_reading`` (the peer is held back by TCP)."""
        if not self._paused and self._transport is not None and not self._transport.is_closing():
            self._paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Receive again after ``pause_reading``."""
        if self._paused:
            self._paused = False
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()

    # --- the stream interface ----------------------------------------------------------

    def unread(self, data: bytes) -> None:
        """Make ``data`` the next bytes received (bytes peeked by detection)."""
        if data:
            self._buffer[:0] = data

    @property
    def error(self) -> BaseException | None:
        """What broke the connection, if it broke (``None`` for a clean end)."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return len(self._buffer)

    @property
    def socket(self) -> SocketLike | None:
        """The underlying socket (for ``SO_ORIGINAL_DST``)."""
        if self._transport is None:
            return None
        sock: SocketLike | None = self._transport.get_extra_info("socket")
        return sock

    @property
    def peer(self) -> Address:
        """The remote address."""
        info = None if self._transport is None else self._transport.get_extra_info("peername")
        return _address(info)

    @property
    def local(self) -> Address:
        """The local address."""
        info = None if self._transport is None else self._transport.get_extra_info("sockname")
        return _address(info)

    @property
    def at_eof(self) -> bool:
        """Whether the peer has closed and everything it sent has been read."""
        return self._eof and not self._buffer

    @property
    def closing(self) -> bool:
        """Whether the connection is closed or closing."""
        return self._transport is None or self._transport.is_closing()

    async def _raw(self) -> bytes:
        """The next bytes from the socket itself (TLS not applied); ``b""`` at its end."""
        while not self._buffer:
            if self._eof:
                return b""
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    async def start_tls(
        self, tls: TlsSession, anchors: list[x509.Certificate] | None = None
    ) -> None:
        """Run the TLS handshake over this connection; its bytes go through ``tls`` after."""
        while True:
            done = tls.handshake(anchors)
            out = tls.outgoing()
            if out:
                self._write_raw(out)
            if done:
                break
            data = await self._raw()
            tls.feed(data)
            if not data:
                tls.handshake(anchors)
                raise HandshakeError("the peer closed the connection during the handshake")
        # what arrived after the handshake's last flight is already application data
        rest = bytes(self._buffer)
        self._buffer.clear()
        if rest:
            tls.feed(rest)
        if self._eof:
            tls.feed(b"")
        self.tls = tls
        plain, eof = tls.read()
        self._buffer += plain
        if eof:
            self._eof = True
        await self.drain()

    async def read(self) -> bytes:
        """The next bytes received; ``b""`` once the peer has finished sending.

        Raises the connection's error (``ConnectionResetError``...) if it broke.
        """
        if self._sink is not None:
            raise RuntimeError("this connection is delivering to a sink")
        while not self._buffer:
            if self._eof:
                if self._error is not None and isinstance(self._error, OSError):
                    raise self._error
                return b""
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        if len(self._buffer) <= READ_SIZE:
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:READ_SIZE])
            del self._buffer[:READ_SIZE]
        if self.meter is not None:
            self.meter.read(len(data))
        return data

    def _write_raw(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is closed for writing")
        transport.write(data)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (call ``drain`` for back-pressure)."""
        transport = self._transport
        if self._eof_sent or transport is None or transport.is_closing():
            raise ConnectionResetError("the connection is closed for writing")
        if self.meter is not None:
            self.meter.wrote(len(data))
        if self.tls is not None:
            data = self.tls.write(data)
        transport.write(data)

    async def drain(self) -> None:
        """Wait until the write buffer is small enough."""
        if not self.writing_paused:
            return
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()
        await self._drain

    def write_eof(self) -> None:
        """Finish sending (a TCP half close)."""
        transport = self._transport
        if self._eof_sent or transport is None or transport.is_closing():
            return
        self._eof_sent = True
        if transport.can_write_eof():
            transport.write_eof()

    def close(self) -> None:
        """Close now (idempotent)."""
        self._sink = None
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close now, discarding what is not sent yet."""
        self._sink = None
        if self._transport is not None:
            self._transport.abort()

    async def aclose(self) -> None:
        """Close and wait until the socket is released."""
        self.close()
        if self._closed is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await self._closed


async def connect(
    address: Address,
    *,
    timeout: float,
    tls: TlsSession | None = None,
) -> Conn:
    """Connect to ``address`` (and complete the TLS handshake) within ``timeout``.

    Raises ``TimeoutError``, ``OSError`` or ``HandshakeError``.
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, conn = await loop.create_connection(Conn, address.host, address.port)
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
    error on either side ends both. Bytes are copied in the receive callbacks:
    no task, no buffer beyond the sockets' own (a full destination pauses its source).
    """
    done = asyncio.get_running_loop().create_future()
    finished: set[int] = set()

    def end() -> None:
        if not done.done():
            done.set_result(None)

    def pipe(src: Conn, dst: Conn, count: Callable[[int], None] | None) -> Sink:
        def sink(data: bytes) -> None:
            if not data:
                if src.error is not None:
                    end()
                    return
                dst.write_eof()
                finished.add(id(src))
                if len(finished) == 2:
                    end()
                return
            if count is not None:
                count(len(data))
            try:
                dst.write(data)
            except (ConnectionError, OSError):
                end()
                return
            if dst.writing_paused:
                src.pause_reading()
                dst.on_drained = src.resume_reading

        return sink

    a.set_sink(pipe(a, b, a_read))
    b.set_sink(pipe(b, a, b_read))
    try:
        await done
    finally:
        a.set_sink(None)
        b.set_sink(None)
