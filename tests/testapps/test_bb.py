"""bb terminus: its command line, JSON answers, gRPC answers and logrus lines."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import httpx
import pytest

from mesh.testapps import bb


def test_the_seed_command_line() -> None:
    cfg = bb.parse_args(["terminus", "--h1-server-port=8080", "--response-text=hello\n"])
    assert (cfg.h1_port, cfg.grpc_port, cfg.response_text) == (8080, -1, "hello\n")
    assert cfg.id == "terminus-grpc:-1-h1:8080"
    cfg = bb.parse_args(["terminus", "--grpc-server-port", "9090", "--id", "t1"])
    assert (cfg.grpc_port, cfg.id) == (9090, "t1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "needs a strategy"),
        (["nope"], 'unknown command "nope"'),
        (["http-egress", "--h1-server-port=1"], "not available here"),
        (["terminus"], "requires at least one server port"),
        (["terminus", "--h1-server-port=1", "--h1-downstream-server=x"], "zero downstream"),
        (["terminus", "--h1-server-port=x"], 'invalid argument "x"'),
        (["terminus", "--h1-server-port=1", "--bogus=1"], "unknown flag: --bogus"),
    ],
)
def test_bad_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(bb.UsageError, match=message):
        bb.parse_args(argv)


def test_json_as_protobuf_and_go_write_it() -> None:
    assert bb.response_json("u1", "hello\n") == '{"requestUID":"u1","payload":"hello\\n"}'
    assert bb.response_json("", "<a&b>") == '{"payload":"\\u003ca\\u0026b\\u003e"}'


def test_logrus_text_line() -> None:
    line = bb.log_line("info", 'say "hi"', datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert line == 'time="2024-01-02T03:04:05Z" level=info msg="say \\"hi\\""'


def test_protobuf_fields_round_trip() -> None:
    raw = bb._pb_string(1, "uid-1") + bb._pb_string(2, "x" * 200)
    assert bb.pb_request_uid(raw) == "uid-1"
    assert bb.pb_request_uid(b"\x0a\x05ab") == "ab"  # short field: what is there
    with pytest.raises(ValueError, match="truncated"):
        bb.pb_request_uid(b"\x0a")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def terminus() -> AsyncIterator[tuple[int, int]]:
    h1, g = _free_port(), _free_port()
    cfg = bb.parse_args(
        ["terminus", f"--h1-server-port={h1}", f"--grpc-server-port={g}", "--response-text=hi"]
    )
    task = asyncio.create_task(bb.run(cfg))
    await asyncio.sleep(0.3)
    yield h1, g
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_h1_answers_any_request_and_keeps_connections(terminus: tuple[int, int]) -> None:
    h1, _ = terminus
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{h1}") as c:
        r = await c.get("/anything")
        assert r.status_code == 200
        assert r.reason_phrase == "OK"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        body = r.json()
        assert body["payload"] == "hi"
        assert body["requestUID"].startswith("in:http-sid:")
        r = await c.post("/", content=b'{"requestUID":"mine"}')
        assert r.json() == {"requestUID": "mine", "payload": "hi"}
        r = await c.post("/", content=b"not json")
        assert r.status_code == 500
        assert r.text == "error unmarshalling the request: not json\n"


async def test_grpc_answers_the_function(terminus: tuple[int, int]) -> None:
    _, g = terminus
    async with grpc.aio.insecure_channel(f"127.0.0.1:{g}") as ch:
        call = ch.unary_unary("/buoyantio.bb.TheService/theFunction")
        raw = await call(bb._pb_string(1, "g1"), timeout=5)
    assert raw == bb._pb_string(1, "g1") + bb._pb_string(2, "hi")
