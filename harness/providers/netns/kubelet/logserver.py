"""The kubelet's HTTPS endpoint on ``<node IP>:10250``: what the API server proxies to.

Serves ``GET /containerLogs/{namespace}/{pod}/{container}`` with ``tailLines``,
``previous``, ``follow`` and ``limitBytes`` (``kubectl logs``), the SPDY/3.1 upgrades
of ``/exec``, ``/attach`` and ``/portForward`` (``kubectl exec/attach/port-forward``,
see :mod:`.streamserver`), plus ``/healthz``. The certificate is self-signed (the API
server is not told to verify kubelets); the socket lives in the node's network
namespace. Errors before an upgrade are plain-text HTTP replies, as kubelet's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.providers.netns.kubelet.config import KubeletTimings
from harness.providers.netns.kubelet.nsnet import NetnsSockets
from harness.providers.netns.kubelet.runtime import ContainerRuntime
from harness.providers.netns.kubelet.spdyconn import SpdyConnection
from harness.providers.netns.kubelet.streaming import (
    PORT_FORWARD_PROTOCOLS,
    REMOTE_COMMAND_PROTOCOLS,
    BadRequest,
    StreamRequest,
    negotiate,
    parse_request,
)
from harness.providers.netns.kubelet.streamserver import (
    AttachSession,
    ExecSession,
    collect_streams,
    port_forward,
    read_from,
)
from harness.providers.netns.kubelet.worker import PodWorker

log = logging.getLogger(__name__)

REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}
STREAM_ENDPOINTS = ("exec", "attach", "portForward")


def ensure_certificate(directory: Path, node_name: str, node_ip: str) -> tuple[Path, Path]:
    """A self-signed serving certificate for the node (created once, then reused)."""
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name}@isthmus-kubelet")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(node_name), x509.IPAddress(ipaddress.ip_address(node_ip))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def tail(data: bytes, lines: int | None, limit: int | None) -> bytes:
    if lines is not None:
        parts = data.splitlines(keepends=True)
        data = b"".join(parts[-lines:]) if lines > 0 else b""
    if limit is not None:
        data = data[:limit]
    return data


class LogServer:
    def __init__(
        self,
        sockets: NetnsSockets,
        host: str,
        port: int,
        cert_dir: Path,
        node_name: str,
        lookup: Callable[[str, str], PodWorker | None],
        timings: KubeletTimings | None = None,
    ) -> None:
        self.timings = timings or KubeletTimings()
        self.sockets = sockets
        self.host, self.port = host, port
        self.cert_dir = cert_dir
        self.node_name = node_name
        self.lookup = lookup
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        cert, key = ensure_certificate(self.cert_dir, self.node_name, self.host)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        sock = await self.sockets.new_socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        self._server = await asyncio.start_server(self._handle, sock=sock, ssl=ctx)
        log.info("logs server on https://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            headers: dict[str, list[str]] = {}
            while (line := await asyncio.wait_for(reader.readline(), 10)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                name, _, value = line.decode("latin-1").partition(":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            parts = request.decode("latin-1").split()
            url = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("/")
            endpoint = url.path.strip("/").split("/")[0]
            if len(parts) >= 2 and endpoint in STREAM_ENDPOINTS and parts[0] in ("GET", "POST"):
                await self._stream(reader, writer, parts[1], headers)
                return
            if len(parts) < 2 or parts[0] != "GET":
                await self._reply(writer, 405, b"only GET\n")
                return
            if url.path == "/healthz":
                await self._reply(writer, 200, b"ok")
                return
            segments = [unquote(s) for s in url.path.strip("/").split("/")]
            if len(segments) != 4 or segments[0] != "containerLogs":
                await self._reply(writer, 404, b"not found\n")
                return
            await self._logs(writer, segments[1], segments[2], segments[3], parse_qs(url.query))
        except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _reply(self, writer: asyncio.StreamWriter, code: int, body: bytes) -> None:
        reason = REASONS.get(code, "Error")
        writer.write(
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _logs(
        self,
        writer: asyncio.StreamWriter,
        namespace: str,
        pod: str,
        container: str,
        query: dict[str, list[str]],
    ) -> None:
        def flag(name: str) -> bool:
            return query.get(name, ["false"])[0].lower() in ("true", "1")

        def number(name: str) -> int | None:
            raw = query.get(name, [""])[0]
            return int(raw) if raw.lstrip("-").isdigit() else None

        worker = self.lookup(namespace, pod)
        if worker is None or worker.container(container) is None:
            await self._reply(
                writer,
                404,
                f"container {container!r} of pod {namespace}/{pod} not found\n".encode(),
            )
            return
        previous = flag("previous")
        path = worker.log_file(container, previous)
        if path is None:
            what = "previous terminated container" if previous else "container"
            await self._reply(
                writer, 400, f'{what} "{container}" in pod "{pod}" has no log yet\n'.encode()
            )
            return
        data = tail(path.read_bytes(), number("tailLines"), number("limitBytes"))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        offset = path.stat().st_size
        self._chunk(writer, data)
        await writer.drain()
        rt = worker.container(container)
        if flag("follow") and not previous and rt is not None:
            instance = rt.restart_count
            while True:
                await asyncio.sleep(self.timings.log_follow_poll)
                more = read_from(path, offset)
                offset += len(more)
                if more:
                    self._chunk(writer, more)
                    await writer.drain()
                alive = rt.process is not None and rt.restart_count == instance
                if not alive or worker.done.is_set():
                    break
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        if data:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    # -- streaming ------------------------------------------------------------------

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: str,
        headers: dict[str, list[str]],
    ) -> None:
        """Check the request, upgrade to SPDY/3.1 and run the session."""
        try:
            req = parse_request(target)
        except BadRequest as e:
            await self._reply(writer, 400, f"{e}\n".encode())
            return
        upgrade = ",".join(headers.get("upgrade", [])).lower()
        if "spdy/3.1" not in upgrade:
            await self._reply(
                writer, 400, b"this kubelet streams over SPDY/3.1 only (Upgrade: SPDY/3.1)\n"
            )
            return
        supported = (
            PORT_FORWARD_PROTOCOLS if req.kind == "portForward" else REMOTE_COMMAND_PROTOCOLS
        )
        offered = headers.get("x-stream-protocol-version", [])
        protocol = negotiate(offered, supported)
        if protocol is None:
            message = (
                f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                f"server supports {list(supported)}\n"
            )
            await self._reply(writer, 403, message.encode())
            return
        worker = self.lookup(req.namespace, req.pod)
        if worker is None or worker.sandbox is None:
            await self._reply(writer, 404, f"pod {req.namespace}/{req.pod} not found\n".encode())
            return
        rt = None
        if req.kind != "portForward":
            rt = worker.container(req.container)
            running = rt is not None and rt.process is not None and rt.process.running
            if rt is None or not running or rt.exec_ctx is None:
                message = f'container "{req.container}" in pod "{req.pod}" is not running\n'
                await self._reply(writer, 400 if rt is not None else 404, message.encode())
                return
        lines = ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: SPDY/3.1"]
        if protocol:
            lines.append(f"X-Stream-Protocol-Version: {protocol}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        conn = SpdyConnection(reader, writer)
        conn.start()
        try:
            await self._session(conn, req, protocol, worker, rt)
        finally:
            await conn.close()

    async def _session(
        self,
        conn: SpdyConnection,
        req: StreamRequest,
        protocol: str,
        worker: PodWorker,
        rt: ContainerRuntime | None,
    ) -> None:
        assert worker.sandbox is not None
        if req.kind == "portForward":
            netns = Path("/run/netns") / worker.sandbox.netns
            label = f"{req.pod}_{req.namespace}"
            await port_forward(conn, netns, label, worker.uid, self.timings)
            return
        assert rt is not None
        assert rt.exec_ctx is not None
        channels = await collect_streams(conn, req, protocol, self.timings.stream_creation)
        if channels is None:
            return
        if req.kind == "exec":
            await ExecSession(
                conn, channels, rt, rt.exec_ctx, req, self.timings, worker.ctx.cgroups
            ).run()
            return
        log_path = worker.log_file(req.container, previous=False)
        if log_path is None:
            return
        await AttachSession(conn, channels, rt, log_path, self.timings).run()
