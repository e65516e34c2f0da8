"""``python -m bench.proxy``: HTTP/1.1 throughput through two proxies on loopback.

    load -> outbound proxy ("web") -> mTLS -> inbound proxy ("bb") -> app

Each part runs in its own process (the proxies are single-threaded asyncio),
everything on 127.0.0.1 with ephemeral ports. The load opens N keep-alive
connections, each sending requests back to back for the given time, and prints
requests per second and latency percentiles, for: the app alone (the ceiling of
the load generator), the proxies in plaintext, and the proxies with mTLS.

    python -m bench.proxy [--seconds 5] [--connections 1,8,32] [--modes direct,plain,mtls]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

TRUST_DOMAIN = "cluster.local"
SERVICE = ("10.43.0.10", 8080)
AUTHORITY = "bb.demo.svc.cluster.local:8080"
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
READY_TIMEOUT = 30.0
"""Seconds a part may take to start listening."""


def _identity(sa: str) -> str:
    return f"{sa}.demo.serviceaccount.identity.linkerd.{TRUST_DOMAIN}"


# --- the parts, each run as ``python -m bench.proxy part ...`` --------------------------


class _App(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


async def _app() -> None:
    server = await asyncio.get_running_loop().create_server(_App, "127.0.0.1", 0)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


async def _proxy(role: str, certs: Path | None, target_port: int) -> None:
    from mesh.proxy.config import ProxyConfig
    from mesh.proxy.discovery import Add, Address, Endpoint, NotFound, Update
    from mesh.proxy.origdst import fixed_destination
    from mesh.proxy.policy import StaticPolicy
    from mesh.proxy.server import Proxy
    from mesh.proxy.tls import TlsCredentials, TlsStore

    name = "web" if role == "client" else "bb"
    tls = None
    if certs is not None:
        tls = TlsStore(
            TlsCredentials(
                _identity(name),
                (certs / f"{name}.crt").read_bytes(),
                (certs / f"{name}.key").read_bytes(),
                (certs / "anchors.pem").read_bytes(),
            )
        )

    class Static:
        async def resolve(self, target: str) -> AsyncIterator[Update]:
            update: Update = NotFound()
            if role == "client":
                peer = _identity("bb") if certs is not None else None
                endpoint = Endpoint(Address("127.0.0.1", target_port), identity=peer)
                update = Add((endpoint,))
            yield update
            await asyncio.Event().wait()

    config = ProxyConfig(
        inbound_host="127.0.0.1",
        inbound_port=0,
        outbound_host="127.0.0.1",
        outbound_port=0,
        admin_host="127.0.0.1",
        admin_port=0,
    )
    proxy = Proxy(
        config,
        discovery=Static(),
        policy=StaticPolicy(),
        tls=tls,
        outbound_destination=fixed_destination(Address(*SERVICE)),
        inbound_destination=fixed_destination(Address("127.0.0.1", target_port)),
    )
    async with proxy:
        port = proxy.outbound_port if role == "client" else proxy.inbound_port
        print(f"ready {port}", flush=True)
        await asyncio.Event().wait()


# --- the load -----------------------------------------------------------------------------


async def _load(port: int, connections: int, seconds: float) -> tuple[float, list[float]]:
    request = f"GET / HTTP/1.1\r\nhost: {AUTHORITY}\r\n\r\n".encode()
    latencies: list[float] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        end = time.monotonic() + seconds
        try:
            while (start := time.monotonic()) < end:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                latencies.append(time.monotonic() - start)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies) / (time.monotonic() - started), latencies


# --- orchestration ------------------------------------------------------------------------


def _write_certs(directory: Path) -> None:
    from mesh.identity import Accepted, create_anchor, create_issuer, issue, parse

    now = datetime.now(UTC)
    anchor = create_anchor(TRUST_DOMAIN, now=now)
    issuer = create_issuer(anchor, TRUST_DOMAIN, now=now)
    (directory / "anchors.pem").write_bytes(anchor.certificate_pem())
    for sa in ("web", "bb"):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(_identity(sa))]), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        issued = issue(issuer, Accepted(parse(_identity(sa)), csr), now=now)
        (directory / f"{sa}.crt").write_bytes(issued.leaf_pem() + issued.chain_pem())
        (directory / f"{sa}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@contextlib.contextmanager
def _part(*args: str) -> Iterator[int]:
    """Run one part; yield the port it listens on."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.proxy", "part", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = process.stdout.readline()
        if not line.startswith("ready ") or time.monotonic() > deadline:
            raise RuntimeError(f"part {args} did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _report(mode: str, connections: int, rate: float, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"{mode:<7} connections={connections:<3} {rate:9.0f} req/s"
        f"   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms",
        flush=True,
    )


@contextlib.contextmanager
def _entry(mode: str, app_port: int, certs: Path) -> Iterator[int]:
    """The port the load connects to for ``mode``."""
    if mode == "direct":
        yield app_port
        return
    tls = ["--certs", str(certs)] if mode == "mtls" else []
    with (
        _part("proxy", "server", str(app_port), *tls) as inbound,
        _part("proxy", "client", str(inbound), *tls) as outbound,
    ):
        yield outbound


def run(seconds: float, connections: list[int], modes: list[str]) -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {seconds:g}s per figure")
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-") as tmp:
        certs = Path(tmp)
        _write_certs(certs)
        with _part("app") as app_port:
            for mode in modes:
                with _entry(mode, app_port, certs) as port:
                    asyncio.run(_load(port, 1, 0.5))  # warm up: connections, handshakes
                    for n in connections:
                        rate, latencies = asyncio.run(_load(port, n, seconds))
                        _report(mode, n, rate, latencies)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["part"]:
        part = argparse.ArgumentParser(prog="bench.proxy part")
        part.add_argument("kind", choices=["app", "proxy"])
        part.add_argument("role", nargs="?", choices=["client", "server"])
        part.add_argument("target", nargs="?", type=int, default=0)
        part.add_argument("--certs", type=Path)
        args = part.parse_args(argv[1:])
        if args.kind == "app":
            asyncio.run(_app())
        else:
            asyncio.run(_proxy(args.role, args.certs, args.target))
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--modes", default="direct,plain,mtls")
    args = parser.parse_args(argv)
    run(
        args.seconds,
        [int(c) for c in args.connections.split(",")],
        [m.strip() for m in args.modes.split(",")],
    )


if __name__ == "__main__":
    main()
