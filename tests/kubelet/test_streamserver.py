"""An exec session end to end over a socket pair: SPDY frames in, command output out.

The "container" is this test process itself (nsenter into our own namespaces), so
the session's wiring (streams, stdin EOF, exit status, FIN on every stream) is
checked without a cluster; the suites check it with the real kubectl.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from dataclasses import dataclass

import pytest

from harness.providers.netns.kubelet.config import KubeletTimings
from harness.providers.netns.kubelet.probes import ExecContext
from harness.providers.netns.kubelet.spdy import (
    FLAG_FIN,
    SYN_REPLY,
    HeaderCompressor,
    control_frame,
    data_frame,
)
from harness.providers.netns.kubelet.spdyconn import SpdyConnection
from harness.providers.netns.kubelet.streaming import V4, parse_request
from harness.providers.netns.kubelet.streamserver import ExecSession, collect_streams

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="nsenter needs root")


@dataclass
class _Process:
    proc: asyncio.subprocess.Process


class _Runtime:
    """Just enough of a ContainerRuntime: a process that outlives the exec."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.process = _Process(proc)


def _syn(deflate: HeaderCompressor, stream_id: int, kind: str) -> bytes:
    block = deflate.compress({"streamType": [kind]})
    return control_frame(1, 0, struct.pack(">IIBB", stream_id, 0, 0, 0) + block)


def _frames(data: bytes) -> list[tuple[bool, int, int, bytes]]:
    out = []
    while len(data) >= 8:
        first, second = struct.unpack_from(">II", data, 0)
        length = second & 0xFFFFFF
        control = bool(first & 0x80000000)
        ident = first & 0xFFFF if control else first
        out.append((control, ident, second >> 24, data[8 : 8 + length]))
        data = data[8 + length :]
    return out


async def _exec(target: str, stdin: bytes | None) -> dict[int, bytes]:
    req = parse_request(target)
    server_sock, client_sock = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=server_sock)
    conn = SpdyConnection(reader, writer)
    conn.start()
    container = await asyncio.create_subprocess_exec("sleep", "60")
    deflate = HeaderCompressor()
    streams = {1: "error", 3: "stdout", 5: "stderr"}
    if req.stdin:
        streams[7] = "stdin"
    hello = b"".join(_syn(deflate, sid, kind) for sid, kind in streams.items())
    if stdin is not None:
        hello += data_frame(7, stdin) + data_frame(7, b"", fin=True)
    client_sock.sendall(hello)
    try:
        channels = await collect_streams(conn, req, V4, timeout=10)
        assert channels is not None
        ctx = ExecContext(os.getpid(), {"PATH": os.environ["PATH"], "GREETING": "hi"})
        rt = _Runtime(container)
        await ExecSession(conn, channels, rt, ctx, req, KubeletTimings()).run()  # type: ignore[arg-type]
        await conn.close()
        received = b""
        client_sock.setblocking(False)
        loop = asyncio.get_running_loop()
        while chunk := await loop.sock_recv(client_sock, 65536):
            received += chunk
    finally:
        client_sock.close()
        container.kill()
        await container.wait()
    out: dict[int, bytes] = {sid: b"" for sid in streams}
    replies, fins = set(), set()
    for control, ident, flags, payload in _frames(received):
        if control and ident == SYN_REPLY:
            replies.add(struct.unpack_from(">I", payload)[0])
        elif not control:
            out[ident] += payload
            if flags & FLAG_FIN:
                fins.add(ident)
    assert replies == set(streams), f"every stream gets a SYN_REPLY: {replies}"
    assert fins == set(streams), f"every stream is half-closed at the end: {fins}"
    return out


async def test_exec_streams_stdout_stderr_and_nonzero_exit_status() -> None:
    out = await _exec(
        "/exec/ns/p/c?command=sh&command=-c&command=echo+$GREETING;echo+oops>%262;exit+3"
        "&output=1&error=1",
        None,
    )
    assert out[3] == b"hi\n"
    assert out[5] == b"oops\n"
    status = json.loads(out[1])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_exec_reads_stdin_to_eof_and_reports_success() -> None:
    out = await _exec("/exec/ns/p/c?command=wc&command=-c&input=1&output=1&error=1", b"x" * 70000)
    assert out[3].strip() == b"70000"
    assert json.loads(out[1]) == {"metadata": {}, "status": "Success"}
