"""Exec, attach and port-forward sessions over an upgraded SPDY connection (IO).

The protocol rules live in :mod:`.streaming` and :mod:`.spdy`; this module runs
them. An exec'd command enters the container's mount, network, UTS and root
(``nsenter`` at the container's leader pid), as the container's user, with its
environment and working directory; with a terminal it gets a pty as its controlling
terminal, resized as the client asks. It is killed when the container's process
ends. Port-forward dials ``127.0.0.1:<port>`` inside the pod's network namespace,
one TCP connection per stream pair, both directions with half-close. Attach follows
the container's output (stdout and stderr as the log holds them) from now on and,
when the container was started with ``stdin: true``, writes to its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import struct
import subprocess
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from harness.providers.netns.kubelet.cgroups import CgroupV2
from harness.providers.netns.kubelet.config import KubeletTimings
from harness.providers.netns.kubelet.nsnet import NetnsSockets
from harness.providers.netns.kubelet.probes import ExecContext, nsenter_argv
from harness.providers.netns.kubelet.runtime import ContainerRuntime
from harness.providers.netns.kubelet.spdyconn import Inbox, SpdyConnection
from harness.providers.netns.kubelet.streaming import (
    ERROR,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    BadRequest,
    PortForwardPairs,
    ResizeDecoder,
    StreamRequest,
    error_status,
    exit_status,
    expected_streams,
    header,
)

log = logging.getLogger(__name__)

CHUNK = 32 * 1024


@dataclass
class Channels:
    """The remote-command streams the client opened, by type."""

    protocol: str
    boxes: dict[str, Inbox]

    def id(self, kind: str) -> int | None:
        box = self.boxes.get(kind)
        return None if box is None else box.stream_id


async def collect_streams(
    conn: SpdyConnection, req: StreamRequest, protocol: str, timeout: float
) -> Channels | None:
    """Accept the streams ``req`` calls for; None if they do not all come in time."""
    wanted = expected_streams(req, protocol)
    boxes: dict[str, Inbox] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while set(boxes) != wanted:
        try:
            box = await conn.next_stream(max(0.0, deadline - loop.time()))
        except TimeoutError:
            log.warning("%s %s/%s: timed out waiting for streams", req.kind, req.namespace, req.pod)
            return None
        if box is None:
            return None
        kind = header(box.headers, "streamType")
        if kind not in wanted or kind in boxes:
            await conn.refuse(box.stream_id)
            continue
        boxes[kind] = box
        await conn.reply(box.stream_id)
    return Channels(protocol, boxes)


async def _pump_out(
    read: Callable[[], Awaitable[bytes]], conn: SpdyConnection, stream_id: int | None
) -> None:
    """Copy what ``read`` yields to a stream until EOF (discarding it without a stream)."""
    with contextlib.suppress(OSError, ConnectionError):
        while data := await read():
            if stream_id is not None:
                await conn.send(stream_id, data)


async def _until_gone(rt: ContainerRuntime) -> None:
    proc = rt.process
    if proc is not None:
        await proc.proc.wait()


def read_from(path: Path, offset: int) -> bytes:
    """What a file holds from ``offset`` on (nothing if it is gone)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _set_winsize(fd: int, columns: int, rows: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class ExecSession:
    """One ``kubectl exec``: run the command, wire its stdio to the streams, report exit."""

    def __init__(
        self,
        conn: SpdyConnection,
        ch: Channels,
        rt: ContainerRuntime,
        ctx: ExecContext,
        req: StreamRequest,
        timings: KubeletTimings,
        cgroups: CgroupV2 | None = None,
    ) -> None:
        self.conn, self.ch, self.rt, self.ctx, self.req = conn, ch, rt, ctx, req
        self.timings = timings
        self.cgroups = cgroups

    async def run(self) -> None:
        env = dict(self.ctx.env)
        try:
            if self.req.tty:
                env.setdefault("TERM", "xterm")
                code = await self._run_tty(env)
            else:
                code = await self._run_pipes(env)
            status = exit_status(code, self.ch.protocol)
        except OSError as e:
            status = error_status(f"error executing command in container: {e}", self.ch.protocol)
        error_id = self.ch.id(ERROR)
        assert error_id is not None
        if status:
            await self.conn.send(error_id, status)
        for box in self.ch.boxes.values():
            await self.conn.end(box.stream_id)

    async def _feed_stdin(
        self, write: Callable[[bytes], Awaitable[None]], close: Callable[[], None]
    ) -> None:
        box = self.ch.boxes.get(STDIN)
        if box is None:
            return
        try:
            while (data := await box.read()) is not None:
                await write(data)
        except (OSError, ConnectionError):
            pass
        finally:
            close()

    async def _watch_resize(self, fd: int) -> None:
        box = self.ch.boxes.get(RESIZE)
        if box is None:
            return
        decoder = ResizeDecoder()
        while (data := await box.read()) is not None:
            for columns, rows in decoder.feed(data):
                _set_winsize(fd, columns, rows)

    async def _finish(
        self, proc: asyncio.subprocess.Process, pumps: list[asyncio.Task[None]]
    ) -> int:
        """Wait for the command (killing it if the container ends), then drain its output."""
        if self.cgroups is not None:
            self.cgroups.join(self.ctx.pid, proc.pid)
        gone = asyncio.ensure_future(_until_gone(self.rt))
        hung_up = asyncio.ensure_future(self.conn.closed.wait())
        waiting = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait({gone, hung_up, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            code = await waiting
        finally:
            gone.cancel()
            hung_up.cancel()
        outputs = [t for t in pumps if t.get_name() == "output"]
        if outputs:
            await asyncio.wait(outputs, timeout=self.timings.exec_drain)
        for t in pumps:
            t.cancel()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return _exit_code(code)

    async def _run_pipes(self, env: dict[str, str]) -> int:
        req = self.req
        proc = await asyncio.create_subprocess_exec(
            *nsenter_argv(self.ctx, req.command),
            env=env,
            stdin=subprocess.PIPE if req.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        pumps: list[asyncio.Task[None]] = []
        for pipe, kind in ((proc.stdout, STDOUT), (proc.stderr, STDERR)):
            assert pipe is not None
            pumps.append(
                asyncio.create_task(
                    _pump_out(partial(pipe.read, CHUNK), self.conn, self.ch.id(kind)),
                    name="output",
                )
            )
        if proc.stdin is not None:
            stdin = proc.stdin

            async def write(data: bytes) -> None:
                stdin.write(data)
                await stdin.drain()

            pumps.append(asyncio.create_task(self._feed_stdin(write, stdin.close), name="stdin"))
        return await self._finish(proc, pumps)

    async def _run_tty(self, env: dict[str, str]) -> int:
        master, slave = os.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                "setsid",
                "-c",
                *nsenter_argv(self.ctx, self.req.command),
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        loop = asyncio.get_running_loop()
        out = asyncio.StreamReader()
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(out), os.fdopen(os.dup(master), "rb", 0)
        )
        write_transport, write_proto = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(master, "wb", 0)
        )

        async def read_tty() -> bytes:
            try:
                return await out.read(CHUNK)
            except OSError:  # EIO: the terminal's last user is gone
                return b""

        async def write(data: bytes) -> None:
            write_transport.write(data)

        pumps = [
            asyncio.create_task(_pump_out(read_tty, self.conn, self.ch.id(STDOUT)), name="output"),
            asyncio.create_task(self._feed_stdin(write, lambda: None), name="stdin"),
            asyncio.create_task(self._watch_resize(master), name="resize"),
        ]
        try:
            return await self._finish(proc, pumps)
        finally:
            read_transport.close()
            write_transport.close()
            del write_proto


class AttachSession:
    """One ``kubectl attach``: the container's output from now on, its stdin if it has one."""

    def __init__(
        self,
        conn: SpdyConnection,
        ch: Channels,
        rt: ContainerRuntime,
        log_path: Path,
        timings: KubeletTimings,
    ) -> None:
        self.conn, self.ch, self.rt, self.log_path = conn, ch, rt, log_path
        self.timings = timings
        self._stream: int | None = None
        self._offset = 0

    async def run(self) -> None:
        """Follow until the container ends or the client hangs up; a client's stdin
        ending also ends the session, after ``exec_drain`` seconds for the answer."""
        self._stream = self.ch.id(STDOUT) or self.ch.id(STDERR)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        follower = asyncio.create_task(self._follow())
        proc = self.rt.process
        stdin = proc.proc.stdin if proc is not None else None
        box = self.ch.boxes.get(STDIN)
        feeder = None
        if box is not None and stdin is not None:
            feeder = asyncio.create_task(self._feed(box, stdin))
        gone = asyncio.create_task(_until_gone(self.rt))
        closed = asyncio.create_task(self.conn.closed.wait())
        ends = {gone, closed} | ({feeder} if feeder is not None else set())
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            if feeder is not None and feeder.done() and not (gone.done() or closed.done()):
                await asyncio.wait({gone, closed}, timeout=self.timings.exec_drain)
        finally:
            for t in [follower, gone, closed, *([feeder] if feeder is not None else [])]:
                t.cancel()
        await self._forward_new_output()  # what the container wrote since the last poll
        error_id = self.ch.id(ERROR)
        assert error_id is not None
        await self.conn.send(error_id, exit_status(0, self.ch.protocol))
        for b in self.ch.boxes.values():
            await self.conn.end(b.stream_id)

    async def _forward_new_output(self) -> None:
        data = read_from(self.log_path, self._offset)
        self._offset += len(data)
        if data and self._stream is not None:
            await self.conn.send(self._stream, data)

    async def _follow(self) -> None:
        while True:
            await self._forward_new_output()
            await asyncio.sleep(self.timings.log_follow_poll)

    async def _feed(self, box: Inbox, stdin: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while (data := await box.read()) is not None:
                stdin.write(data)
                await stdin.drain()
            if self.rt.spec.get("stdinOnce"):
                stdin.close()


async def _copy_to_socket(box: Inbox, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while (data := await box.read()) is not None:
            await loop.sock_sendall(sock, data)
        if not box.reset:
            sock.shutdown(socket.SHUT_WR)


async def _copy_from_socket(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, conn: SpdyConnection, stream_id: int
) -> None:
    with contextlib.suppress(OSError):
        while data := await loop.sock_recv(sock, CHUNK):
            await conn.send(stream_id, data)


async def port_forward(
    conn: SpdyConnection,
    pod_netns: Path,
    pod_label: str,
    uid: str,
    timings: KubeletTimings,
) -> None:
    """Serve port-forward stream pairs until the client closes the connection."""
    sockets = NetnsSockets(pod_netns)
    pairs = PortForwardPairs()
    tasks: set[asyncio.Task[None]] = set()

    async def forward(port: int, error_box: Inbox, data_box: Inbox) -> None:
        loop = asyncio.get_running_loop()
        try:
            sock = await sockets.connect("127.0.0.1", port, timings.port_forward_dial)
        except (OSError, TimeoutError) as e:
            message = (
                f"error forwarding port {port} to pod {pod_label}, uid {uid}: "
                f"failed to connect to localhost:{port} inside namespace: {e or type(e).__name__}"
            )
            await conn.send(error_box.stream_id, message.encode())
            await conn.reset(data_box.stream_id)
            await conn.reset(error_box.stream_id)
            return
        try:
            upstream = asyncio.create_task(_copy_to_socket(data_box, loop, sock))
            await _copy_from_socket(loop, sock, conn, data_box.stream_id)
            await conn.end(data_box.stream_id)
            await asyncio.wait([upstream], timeout=timings.exec_drain)
            upstream.cancel()
        finally:
            sock.close()
            await conn.end(error_box.stream_id)

    boxes: dict[int, Inbox] = {}
    try:
        while (box := await conn.next_stream()) is not None:
            try:
                pair = pairs.add(box.stream_id, box.headers)
            except BadRequest as e:
                log.info("port-forward %s: %s", pod_label, e)
                await conn.refuse(box.stream_id)
                continue
            boxes[box.stream_id] = box
            await conn.reply(box.stream_id)
            if pair is not None:
                error_box, data_box = boxes.pop(pair.error_stream), boxes.pop(pair.data_stream)
                task = asyncio.create_task(forward(pair.port, error_box, data_box))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    finally:
        for t in list(tasks):
            t.cancel()
        sockets.close()
