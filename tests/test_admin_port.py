"""The controllers' admin port: endpoints, and hostile clients cost only their own connection."""

from __future__ import annotations

import asyncio
import time

import pytest

from mesh.admin_port import AdminServer

KEEPALIVE = 0.5
#: a server that never closes would be seen as open after this.
PATIENCE = 5.0


async def _request(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), PATIENCE)
    writer.close()
    return data


async def _closed_after(port: int, sent: bytes) -> float:
    """Seconds until the server closes a connection that sent ``sent`` and then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    if sent:
        writer.write(sent)
        await writer.drain()
    try:
        await asyncio.wait_for(reader.read(), PATIENCE)
    finally:
        writer.close()
    return time.monotonic() - start


@pytest.mark.parametrize(
    "sent", [b"", b"GET /metrics HTTP/1.1\r\nHost: slow\r\n"], ids=["silent", "slowloris"]
)
def test_a_silent_or_slow_client_is_closed_within_the_keepalive(sent: bytes) -> None:
    async def scenario() -> tuple[float, bytes]:
        ready = False
        server = AdminServer(lambda: b"m_total 1\n", lambda: ready, keepalive=KEEPALIVE)
        port = await server.start("127.0.0.1", 0)
        try:
            took = await _closed_after(port, sent)
            return took, await _request(port, "/live")
        finally:
            await server.stop()

    took, live = asyncio.run(scenario())
    assert took < KEEPALIVE + 2.0, (
        f"expected the connection closed within ~{KEEPALIVE}s, took {took:.2f}s"
    )
    assert live.startswith(b"HTTP/1.1 200"), f"the port still serves others; got {live[:40]!r}"


def test_endpoints_answer_metrics_readiness_and_liveness() -> None:
    async def scenario() -> dict[str, bytes]:
        state = {"ready": False}
        server = AdminServer(lambda: b"m_total 1\n", lambda: state["ready"])
        port = await server.start("127.0.0.1", 0)
        try:
            out = {"before": await _request(port, "/ready")}
            state["ready"] = True
            out["after"] = await _request(port, "/ready")
            out["metrics"] = await _request(port, "/metrics")
            out["live"] = await _request(port, "/live")
            return out
        finally:
            await server.stop()

    out = asyncio.run(scenario())
    assert out["before"].startswith(b"HTTP/1.1 503"), out["before"][:40]
    assert out["after"].startswith(b"HTTP/1.1 200"), out["after"][:40]
    assert b"m_total 1" in out["metrics"], out["metrics"][-60:]
    assert out["live"].startswith(b"HTTP/1.1 200"), out["live"][:40]
