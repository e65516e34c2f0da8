"""Sockets that live in the node's network namespace, for a process that does not.

The kubelet runs on the host, but kubelet traffic (probes) comes from the node's
address and the logs server listens on it. A socket belongs to the namespace of the
thread that created it, so one worker thread enters the node namespace once
(``setns``) and creates sockets there; the event loop then uses them as usual.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CLONE_NEWNET = 0x40000000


def _enter(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _new_socket(family: int, kind: int) -> socket.socket:
    return socket.socket(family, kind)


class NetnsSockets:
    """Creates sockets in the network namespace at ``path`` (None: the kubelet's own)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._pool: ThreadPoolExecutor | None = None
        if path is not None:
            self._pool = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="netns", initializer=_enter, initargs=(path,)
            )

    async def new_socket(
        self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
    ) -> socket.socket:
        if self._pool is None:
            sock = socket.socket(family, kind)
        else:
            loop = asyncio.get_running_loop()
            sock = await loop.run_in_executor(self._pool, _new_socket, family, kind)
        sock.setblocking(False)
        return sock

    async def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A connected TCP socket to ``host:port`` from inside the namespace."""
        sock = await self.new_socket()
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout
            )
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
