"""Packet capture on a netns node: what crossed the pod network, byte for byte.

``NodeCapture`` runs this module as a child in a node's network namespace
(``ip netns exec <ns> python -m harness.capture <file>``): one ``AF_PACKET``
socket bound to no interface sees every frame of every interface there (the
node's uplink and each pod's veth), and appends each frame to ``file`` (a 4-byte
big-endian length, then the frame) until SIGTERM. ``tcp_segments`` parses the
frames back into IPv4 TCP segments. Root only; the netns provider only.

Rules: a capture is bounded (``MAX_BYTES`` in all, frames truncated to
``SNAPLEN``), ends with its context, and its child is always reaped.
"""

from __future__ import annotations

import ipaddress
import select
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness.settings import TIMEOUTS
from harness.sh import run

__all__ = ["NodeCapture", "Segment", "node_netns", "tcp_segments"]

NETNS_DIR = Path("/var/run/netns")
ETH_P_ALL = 0x0003
SNAPLEN = 65535
MAX_BYTES = 256 * 1024 * 1024
"""A capture stops recording beyond this many bytes (it keeps running until stopped)."""


@dataclass(frozen=True)
class Segment:
    """One IPv4 TCP segment as it crossed an interface."""

    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


def node_netns(node_ip: str, prefix: str = "isth-") -> str:
    """The network namespace whose interfaces hold ``node_ip``; ``LookupError`` if none."""
    for path in sorted(NETNS_DIR.glob(f"{prefix}*")):
        out = run("ip", "-n", path.name, "-o", "-4", "addr", "show", check=False)
        if any(f" {node_ip}/" in line for line in out.splitlines()):
            return path.name
    raise LookupError(f"no network namespace under {NETNS_DIR} holds the node address {node_ip}")


def _frames(data: bytes) -> Iterator[bytes]:
    offset = 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from("!I", data, offset)
        offset += 4
        yield data[offset : offset + length]
        offset += length


def tcp_segments(data: bytes) -> list[Segment]:
    """The IPv4 TCP segments in a capture file's contents (other frames are skipped)."""
    segments = []
    for frame in _frames(data):
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ip[9] != 6 or len(ip) < header + 20:
            continue
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[header:total] if total else ip[header:]
        offset = (tcp[12] >> 4) * 4
        sport, dport = struct.unpack_from("!HH", tcp, 0)
        segments.append(
            Segment(
                str(ipaddress.IPv4Address(ip[12:16])),
                str(ipaddress.IPv4Address(ip[16:20])),
                sport,
                dport,
                bytes(tcp[offset:]),
            )
        )
    return segments


class NodeCapture:
    """Capture every frame in ``netns`` while the context is open; ``data`` afterwards."""

    def __init__(self, netns: str, file: Path) -> None:
        self.netns = netns
        self.file = file
        self._child: subprocess.Popen[bytes] | None = None
        self.data = b""

    def __enter__(self) -> NodeCapture:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_bytes(b"")
        argv = ["ip", "netns", "exec", self.netns, sys.executable, "-m", __name__, str(self.file)]
        self._child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._child.stdout is not None
        # The socket is open once this line comes.
        ready = b""
        if select.select([self._child.stdout], [], [], TIMEOUTS.capture_start)[0]:
            ready = self._child.stdout.readline()
        if ready.strip() != b"capturing":
            self._stop()
            raise RuntimeError(f"capture in {self.netns} did not start: {ready!r}")
        return self

    def _stop(self) -> str:
        child, self._child = self._child, None
        if child is None:
            return ""
        child.send_signal(signal.SIGTERM)
        try:
            _, err = child.communicate(timeout=TIMEOUTS.teardown_grace)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
        return err.decode(errors="replace")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        self.data = self.file.read_bytes()


def _capture(path: Path) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    sock.settimeout(0.2)
    written = 0
    with path.open("ab") as out:
        print("capturing", flush=True)
        while not stopping:
            try:
                frame = sock.recv(SNAPLEN)
            except TimeoutError:
                continue
            except InterruptedError:
                continue
            if written + len(frame) + 4 > MAX_BYTES:
                continue
            out.write(struct.pack("!I", len(frame)) + frame)
            written += len(frame) + 4
        out.flush()


if __name__ == "__main__":
    _capture(Path(sys.argv[1]))
