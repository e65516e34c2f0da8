"""``harness.capture``: frames in a network namespace, parsed back into TCP segments."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.capture import NodeCapture, node_netns, tcp_segments


def _frame(payload: bytes, sport: int = 40000, dport: int = 8080) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 1024, 0, 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, bytes([10, 0, 0, 1]),
        bytes([10, 0, 0, 2]),
    )  # fmt: skip
    frame = b"\x00" * 12 + b"\x08\x00" + ip + tcp
    return struct.pack("!I", len(frame)) + frame


def test_segments_are_parsed_and_other_frames_skipped() -> None:
    arp = b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28
    data = _frame(b"hello") + struct.pack("!I", len(arp)) + arp + _frame(b"", 1, 2)
    segments = tcp_segments(data)
    assert [(s.src, s.dst, s.sport, s.dport, s.payload) for s in segments] == [
        ("10.0.0.1", "10.0.0.2", 40000, 8080, b"hello"),
        ("10.0.0.1", "10.0.0.2", 1, 2, b""),
    ]


def test_a_truncated_file_yields_what_is_complete() -> None:
    data = _frame(b"one") + b"\x00\x00"
    assert [s.payload for s in tcp_segments(data)] == [b"one"]


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"isth-captest-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "10.250.0.1/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


SEND = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
conn, _ = server.accept()
client.sendall(sys.argv[1].encode())
assert conn.recv(100)
"""


def test_a_capture_sees_the_bytes_sent_in_its_namespace(netns: str, tmp_path: Path) -> None:
    assert node_netns("10.250.0.1", prefix="isth-captest-") == netns
    secret = f"secret-{uuid.uuid4().hex}"
    with NodeCapture(netns, tmp_path / "cap") as capture:
        subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", SEND, secret], check=True
        )
    payloads = b"".join(s.payload for s in tcp_segments(capture.data))
    assert secret.encode() in payloads
