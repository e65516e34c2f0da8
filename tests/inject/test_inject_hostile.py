"""SEC-1 on the injector webhook: hostile clients cost only their own connection.

The webhook runs on 127.0.0.1 over TLS with tight limits; each case opens a
connection that misbehaves (silent before or after TLS, a partial head, a
body that never finishes, an oversized body or header) and checks that the
connection ends within a bound while a real AdmissionReview is answered
promptly on another connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mesh.inject.server import InjectorServer, ServerSettings, server_ssl_context
from mesh.install import create_webhook_cert
from mesh.install.controlplane import WEBHOOK_SERVICE
from tests.inject.support import CONFIG, pod
from tests.inject.test_inject_server import FakeNamespaces, Served, post, review
from tests.install.support import NOW

SERVER_NAME = f"{WEBHOOK_SERVICE}.linkerd.svc"
TIGHT = ServerSettings(
    lookup_timeout=0.2,
    max_body=64 * 1024,
    handshake_timeout=0.5,
    keepalive_timeout=0.5,
    request_timeout=0.5,
    shutdown_timeout=0.5,
)
CLOSED_WITHIN = 3.0
HEALTHY_WITHIN = 2.0


@dataclass
class Target:
    served: Served
    port: int


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Target]:
    cert = create_webhook_cert(WEBHOOK_SERVICE, "linkerd", "cluster.local", now=NOW)
    (tmp_path / "tls.crt").write_bytes(cert.cert_pem)
    (tmp_path / "tls.key").write_bytes(cert.key_pem)
    namespaces = FakeNamespaces({"app": {"linkerd.io/inject": "enabled"}})
    server = InjectorServer(CONFIG, namespaces, TIGHT)
    context = server_ssl_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    port, admin = await server.start("127.0.0.1", 0, context, admin_port=0)
    client_ssl = ssl.create_default_context(cadata=cert.cert_pem.decode())
    served = Served(
        f"https://127.0.0.1:{port}/", f"http://127.0.0.1:{admin}", client_ssl, namespaces
    )
    try:
        yield Target(served, port)
    finally:
        await server.stop()


async def _healthy(target: Target) -> float:
    started = time.monotonic()
    async with asyncio.timeout(HEALTHY_WITHIN):
        status, body = await post(target.served, review("app", pod()))
    assert status == 200, body
    assert body["response"]["allowed"] is True
    return time.monotonic() - started


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    async with asyncio.timeout(CLOSED_WITHIN):
        while chunk := await reader.read(65536):
            data += chunk
    return data


_BIG_HEADER = b"X-Big: " + b"a" * 20000 + b"\r\n"
CASES = {
    # name: (TLS?, bytes sent, statuses allowed in the answer, None: no answer)
    "silent-before-tls": (False, b"", {None}),
    "partial-client-hello": (False, b"\x16\x03\x01\x02\x00\x01", {None}),
    "garbage-instead-of-tls": (False, b"\x00\xff" * 300, {None}),
    "silent-after-tls": (True, b"", {None}),
    "partial-head": (True, b"POST / HTTP/1.1\r\nHost: x\r\n", {None}),
    "slow-body": (True, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{", {408}),
    "oversized-body": (
        True,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"{" * 200000,
        {413},
    ),
    "oversized-header": (True, b"POST / HTTP/1.1\r\nHost: x\r\n" + _BIG_HEADER + b"\r\n", {400}),
    "bad-chunked": (
        True,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        {400},
    ),
}


def _status(data: bytes) -> int | None:
    return int(data.split(b" ", 2)[1]) if data.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")) else None


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_hostile_webhook_client_costs_only_its_connection(
    target: Target, case: str
) -> None:
    """SEC-1: the connection ends in bounded time; a real review is answered meanwhile."""
    use_tls, data, statuses = CASES[case]
    context = target.served.client_ssl if use_tls else None
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", target.port, ssl=context, server_hostname=SERVER_NAME if use_tls else None
    )
    started = time.monotonic()
    try:
        writer.write(data)
        took = await _healthy(target)
        assert took < HEALTHY_WITHIN, f"{case}: a healthy review took {took:.2f}s"
        try:
            answer = await _until_closed(reader)
        except TimeoutError:
            pytest.fail(f"{case}: the injector kept the connection open past {CLOSED_WITHIN}s")
        except (ConnectionError, ssl.SSLError):
            answer = b""
    finally:
        writer.close()
    elapsed = time.monotonic() - started
    assert elapsed < CLOSED_WITHIN, f"{case}: closed after {elapsed:.2f}s"
    assert _status(answer) in statuses, f"{case}: answered {answer[:120]!r}, expected {statuses}"
