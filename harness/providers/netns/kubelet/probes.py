"""Running probes (IO): HTTP and TCP from the node's namespace, exec inside the container.

HTTP and TCP probes connect from the node's network namespace, so the pod sees them
coming from the node address as it would from a real kubelet. Exec probes enter the
container's mount and network namespaces (``nsenter``) as the container's user, with
its environment. Every probe returns (success, message) and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from harness.providers.netns.kubelet.nsnet import NetnsSockets
from harness.providers.netns.kubelet.probing import (
    BadProbe,
    ExecTarget,
    HttpTarget,
    ProbeTarget,
    SleepTarget,
    TcpTarget,
    http_success,
)

USER_AGENT = "kube-probe/1.35"


@dataclass(frozen=True)
class ExecContext:
    """Where an exec probe runs: the container's leader pid, env and credentials."""

    pid: int
    env: Mapping[str, str]
    uid: int | None = None
    gid: int | None = None


def http_request(target: HttpTarget) -> bytes:
    headers = {
        "Host": f"{target.host}:{target.port}",
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        "Connection": "close",
    }
    for name, value in target.headers:
        headers[name.title() if name.lower() in ("host", "user-agent", "accept") else name] = value
    lines = [f"GET {target.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def nsenter_argv(ctx: ExecContext, argv: tuple[str, ...]) -> list[str]:
    out = ["nsenter", "-t", str(ctx.pid), "-m", "-n", "-u", "-r", "-w"]
    if ctx.gid is not None or ctx.uid is not None:
        out += ["-G", str(ctx.gid or 0)]
    if ctx.uid is not None:
        out += ["-S", str(ctx.uid)]
    return [*out, "--", *argv]


class Prober:
    def __init__(self, sockets: NetnsSockets) -> None:
        self.sockets = sockets
        self._tls = ssl.create_default_context()
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    async def probe(
        self, target: ProbeTarget, timeout: float, exec_ctx: ExecContext | None = None
    ) -> tuple[bool, str]:
        try:
            if isinstance(target, BadProbe):
                return False, target.message
            if isinstance(target, SleepTarget):
                await asyncio.sleep(min(target.seconds, timeout))
                return True, ""
            if isinstance(target, HttpTarget):
                return await asyncio.wait_for(self._http(target, timeout), timeout)
            if isinstance(target, TcpTarget):
                sock = await self.sockets.connect(target.host, target.port, timeout)
                sock.close()
                return True, ""
            if isinstance(target, ExecTarget):
                if exec_ctx is None:
                    return False, "exec probe without a running container"
                return await self._exec(target, timeout, exec_ctx)
        except TimeoutError:
            return False, f"timeout after {timeout:g}s"
        except OSError as e:
            return False, str(e) or type(e).__name__
        return False, "unknown probe"

    async def _http(self, target: HttpTarget, timeout: float) -> tuple[bool, str]:
        url = f"{target.scheme.lower()}://{target.host}:{target.port}{target.path}"
        sock = await self.sockets.connect(target.host, target.port, timeout)
        tls = self._tls if target.scheme == "HTTPS" else None
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=tls, server_hostname=target.host if tls else None
        )
        try:
            writer.write(http_request(target))
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            return False, f"Get {url!r}: malformed HTTP response {line[:80]!r}"
        code = int(parts[1])
        if http_success(code):
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"

    async def _exec(self, target: ExecTarget, timeout: float, ctx: ExecContext) -> tuple[bool, str]:
        proc = await asyncio.create_subprocess_exec(
            *nsenter_argv(ctx, target.argv),
            env=dict(ctx.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode == 0:
            return True, ""
        text = out.decode(errors="replace").strip()[-500:]
        return False, f"command {list(target.argv)} exited with {proc.returncode}: {text}"
