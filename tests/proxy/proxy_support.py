"""Helpers for the proxy's asyncio tests: a mesh's certificates, a fake discovery, little apps.

Everything listens on 127.0.0.1 with ephemeral ports. Certificates are made
with ``mesh.identity`` at the real current time (OpenSSL checks validity
against the wall clock).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import h11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mesh.identity import Accepted, Credentials, create_anchor, create_issuer, issue, parse
from mesh.proxy.config import ProxyConfig, Timeouts
from mesh.proxy.discovery import NotFound, Update
from mesh.proxy.tls import TlsCredentials

TRUST_DOMAIN = "cluster.local"
LOOPBACK = "127.0.0.1"


def identity(sa: str, ns: str = "demo") -> str:
    return f"{sa}.{ns}.serviceaccount.identity.linkerd.{TRUST_DOMAIN}"


@dataclass
class Mesh:
    """One trust anchor and issuer, issuing workload certificates."""

    anchor: Credentials = field(
        default_factory=lambda: create_anchor(TRUST_DOMAIN, now=datetime.now(UTC))
    )
    issuer: Credentials | None = None

    def __post_init__(self) -> None:
        if self.issuer is None:
            self.issuer = create_issuer(self.anchor, TRUST_DOMAIN, now=datetime.now(UTC))

    def anchors_pem(self) -> bytes:
        return self.anchor.certificate.public_bytes(serialization.Encoding.PEM)

    def credentials(self, name: str, *, trust: Mesh | None = None) -> TlsCredentials:
        """A workload certificate for ``name``, trusting ``trust``'s anchor (default ours)."""
        assert self.issuer is not None
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        issued = issue(self.issuer, Accepted(parse(name), csr), now=datetime.now(UTC))
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        anchors = (trust or self).anchors_pem()
        return TlsCredentials(name, issued.leaf_pem() + issued.chain_pem(), key_pem, anchors)


class FakeDiscovery:
    """Discovery at our own seam: scripted updates per target, more pushed later.

    An unknown target resolves to ``NotFound`` (forward to the original destination).
    """

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Update]] = {}
        self.resolved: list[str] = []

    def queue(self, target: str) -> asyncio.Queue[Update]:
        return self._queues.setdefault(target, asyncio.Queue())

    def push(self, target: str, *updates: Update) -> None:
        for update in updates:
            self.queue(target).put_nowait(update)

    async def resolve(self, target: str) -> AsyncIterator[Update]:
        self.resolved.append(target)
        if target not in self._queues:
            yield NotFound()
            return
        queue = self._queues[target]
        while True:
            yield await queue.get()


def loopback_config(**timeouts: float) -> ProxyConfig:
    """Every listener on an ephemeral loopback port; short timeouts."""
    values: dict[str, float] = {"connect": 1.0, "failfast": 0.5, "detect": 2.0}
    values.update(timeouts)
    return ProxyConfig(
        inbound_host=LOOPBACK,
        inbound_port=0,
        outbound_host=LOOPBACK,
        outbound_port=0,
        admin_host=LOOPBACK,
        admin_port=0,
        tap_host=LOOPBACK,
        tap_port=0,
        timeouts=Timeouts(**values),
    )


@dataclass
class Seen:
    """What the little app saw: one entry per request."""

    requests: list[dict[str, str]] = field(default_factory=list)


async def start_http_app(seen: Seen, name: str = "app") -> asyncio.Server:
    """A minimal HTTP/1.1 app answering ``<name> <path> <l5d-client-id>``; /status/<n> sets it."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                    continue
                if isinstance(event, h11.Request):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                    path = event.target.decode()
                    seen.requests.append({"path": path, **headers})
                    body_parts: list[bytes] = []
                    while not isinstance(ev := conn.next_event(), h11.EndOfMessage):
                        if ev is h11.NEED_DATA:
                            conn.receive_data(await reader.read(65536))
                        elif isinstance(ev, h11.Data):
                            body_parts.append(ev.data)
                    status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
                    client = headers.get("l5d-client-id", "-")
                    text = f"{name} {path} {client} {b''.join(body_parts).decode()}".strip()
                    body = text.encode()
                    head = h11.Response(
                        status_code=status, headers=[("content-length", str(len(body)))]
                    )
                    writer.write(
                        (conn.send(head) or b"")
                        + (conn.send(h11.Data(body)) or b"")
                        + (conn.send(h11.EndOfMessage()) or b"")
                    )
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                    continue
                break
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, LOOPBACK, 0)


async def start_echo_app() -> asyncio.Server:
    """A TCP echo server that echoes until the client half-closes, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, LOOPBACK, 0)


def client_hello(sni: str | None, alpn: list[str] | None = None) -> bytes:
    """The bytes Python's TLS client sends first."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        return outgoing.read()
    raise AssertionError("a TLS client cannot finish a handshake alone")


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
