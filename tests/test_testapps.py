"""The test workloads: echo server, load client control API, and their pure cores.

Everything listens on 127.0.0.1 with ephemeral ports; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesh.testapps import (
    CLIENT_ID_HEADER,
    ClientConfig,
    HttpListener,
    PodInfo,
    RunningServer,
    ServerConfig,
    SpecError,
    parse_run_spec,
    percentile,
    schedule,
    start_client,
    start_server,
)
from mesh.testapps.loadgen import Record, describe_error, parse_responder, summarize
from mesh.testapps.probes import is_reserved_invalid, parse_addr
from mesh.testapps.server import BadRequest, delay_seconds, status_for_path
from mesh.testapps.settings import Settings

LOOPBACK = "127.0.0.1"
INFO = PodInfo(pod="web-0", namespace="demo", cluster="east", pod_ip="10.10.0.7")
REPO = Path(__file__).resolve().parent.parent

#: a condition polled by a test becomes true (an in-flight request, a log line).
CONDITION_TIMEOUT = 10.0
#: a subprocess starts (imports aiohttp on a busy machine) and stops after SIGTERM.
SUBPROCESS_TIMEOUT = 60.0
#: how often a polled condition is checked.
POLL_INTERVAL = 0.01


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    running = await start_server(ServerConfig(host=LOOPBACK, port=0, tcp_port=0), INFO)
    yield running
    await running.stop()


@pytest.fixture
async def client_api() -> AsyncIterator[HttpListener]:
    listener = await start_client(ClientConfig(host=LOOPBACK, port=0))
    yield listener
    await listener.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def base(listener: HttpListener | RunningServer) -> str:
    return f"http://{LOOPBACK}:{listener.port}"


async def get_json(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.get(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def run(
    http: aiohttp.ClientSession, client_api: HttpListener, body: object
) -> tuple[int, Any]:
    async with http.post(f"{base(client_api)}/run", json=body) as response:
        return response.status, await response.json()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds (aiohttp offers no event for "request received")."""
    async with asyncio.timeout(CONDITION_TIMEOUT):
        while True:
            if condition():
                return
            await asyncio.sleep(POLL_INTERVAL)


# --- server ---------------------------------------------------------------------------


async def test_server_answers_with_identity_and_request(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, body = await get_json(http, f"{base(server)}/some/path?x=1")
    assert status == 200
    assert body == {
        "pod": "web-0",
        "namespace": "demo",
        "cluster": "east",
        "pod_ip": "10.10.0.7",
        "client_id": None,
        "method": "GET",
        "path": "/some/path",
        "host": f"{LOOPBACK}:{server.port}",
        "remote": LOOPBACK,
    }


async def test_server_echoes_client_id(server: RunningServer, http: aiohttp.ClientSession) -> None:
    identity = "default.demo.serviceaccount.identity.linkerd.east.example"
    _, body = await get_json(http, f"{base(server)}/", headers={CLIENT_ID_HEADER: identity})
    assert body["client_id"] == identity


async def test_server_answers_requested_status(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, body = await get_json(http, f"{base(server)}/status/503")
    assert status == 503
    assert body["pod"] == "web-0"
    assert body["path"] == "/status/503"
    async with http.get(f"{base(server)}/status/204") as response:
        assert response.status == 204
        assert await response.read() == b""


@pytest.mark.parametrize("path", ["/status/99", "/status/600", "/?delay_ms=abc", "/?delay_ms=-1"])
async def test_server_rejects_bad_requests(
    server: RunningServer, http: aiohttp.ClientSession, path: str
) -> None:
    status, body = await get_json(http, f"{base(server)}{path}")
    assert status == 400
    assert body["error"]


async def test_server_delays_answer(server: RunningServer, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    status, _ = await get_json(http, f"{base(server)}/status/201?delay_ms=150")
    assert status == 201
    assert time.monotonic() - started >= 0.14


async def test_server_healthz(server: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{base(server)}/healthz") as response:
        assert response.status == 200
        assert await response.text() == "ok"


async def test_server_tcp_says_hello_then_echoes(server: RunningServer) -> None:
    assert server.tcp_port is not None
    reader, writer = await asyncio.open_connection(LOOPBACK, server.tcp_port)
    try:
        hello = json.loads(await reader.readline())
        assert hello == {
            "pod": "web-0",
            "namespace": "demo",
            "cluster": "east",
            "pod_ip": "10.10.0.7",
            "remote": LOOPBACK,
        }
        writer.write(b"ping\x00pong")
        await writer.drain()
        assert await reader.readexactly(9) == b"ping\x00pong"
        writer.write_eof()
        assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_server_stop_finishes_in_flight_and_refuses_new(
    http: aiohttp.ClientSession,
) -> None:
    running = await start_server(ServerConfig(host=LOOPBACK, port=0, tcp_port=0), INFO)
    call = asyncio.create_task(get_json(http, f"{base(running)}/slow?delay_ms=300"))
    web_server = running.http.runner.server
    assert web_server is not None
    await until(lambda: web_server.requests_count > 0)
    await running.stop()
    status, body = await call
    assert (status, body["path"]) == (200, "/slow")
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(LOOPBACK, running.port)


async def test_server_exits_zero_on_sigterm() -> None:
    env = {**os.environ, "POD_NAME": "sig-0", "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mesh.testapps",
        "server",
        "--host",
        LOOPBACK,
        "--port",
        "0",
        "--tcp-port",
        "0",
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = b""
    try:
        async with asyncio.timeout(SUBPROCESS_TIMEOUT):
            while b"server listening" not in log:
                line = await proc.stderr.readline()
                assert line, log.decode()
                log += line
            port = re.search(rb"http=127\.0\.0\.1:(\d+)", log)
            assert port is not None
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://{LOOPBACK}:{int(port[1])}/") as response,
            ):
                assert (await response.json())["pod"] == "sig-0"
            proc.send_signal(signal.SIGTERM)
            log += await proc.stderr.read()
            assert await proc.wait() == 0, log.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert b"server stopped" in log


# --- client: /run ---------------------------------------------------------------------


async def test_client_run_returns_a_record_per_request(
    server: RunningServer, client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    identity = "client.demo.serviceaccount.identity.linkerd.east.example"
    status, result = await run(
        http,
        client_api,
        {"url": f"{base(server)}/", "count": 12, "headers": {CLIENT_ID_HEADER: identity}},
    )
    assert status == 200
    records = result["records"]
    assert [r["i"] for r in records] == list(range(12))
    for record in records:
        assert record["status"] == 200
        assert record["error"] is None
        assert record["latency_ms"] > 0
        assert record["responder"] == {
            "pod": "web-0",
            "namespace": "demo",
            "cluster": "east",
            "client_id": identity,
            "remote": "127.0.0.1",
        }
    summary = result["summary"]
    assert (summary["count"], summary["ok"], summary["errors"]) == (12, 12, 0)
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]
    assert summary["p99_ms"] == max(r["latency_ms"] for r in records)
    assert summary["duration_s"] >= 0


async def test_client_run_records_non_2xx(
    server: RunningServer, client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    _, result = await run(http, client_api, {"url": f"{base(server)}/status/503", "count": 3})
    assert [r["status"] for r in result["records"]] == [503, 503, 503]
    assert all(r["responder"]["pod"] == "web-0" for r in result["records"])
    assert (result["summary"]["ok"], result["summary"]["errors"]) == (0, 0)


async def test_client_run_paces_open_loop(
    server: RunningServer, client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    started = time.monotonic()
    _, result = await run(
        http, client_api, {"url": f"{base(server)}/", "count": 20, "rate": 50, "concurrency": 2}
    )
    assert time.monotonic() - started >= 0.35
    assert result["summary"]["duration_s"] >= 0.35
    assert result["summary"]["ok"] == 20


async def test_client_run_records_connect_errors(
    client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    url = f"http://{LOOPBACK}:{closed_port()}/"
    _, result = await run(http, client_api, {"url": url, "count": 2})
    for record in result["records"]:
        assert record["status"] is None
        assert record["responder"] is None
        assert record["error"].startswith("ConnectError: ")
    summary = result["summary"]
    assert (summary["ok"], summary["errors"], summary["p50_ms"]) == (0, 2, None)


async def test_client_run_records_timeouts(
    server: RunningServer, client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    body = {"url": f"{base(server)}/?delay_ms=400", "count": 1, "timeout": 0.1}
    _, result = await run(http, client_api, body)
    (record,) = result["records"]
    assert record["status"] is None
    assert record["error"].startswith("Timeout")


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"count": 1},
        {"url": "ftp://x/", "count": 1},
        {"url": "http://x/", "count": 0},
        {"url": "http://x/", "count": 100_001},
        {"url": "http://x/", "count": "3"},
        {"url": "http://x/", "count": 1, "rate": -1},
        {"url": "http://x/", "count": 100_000, "rate": 1},
        {"url": "http://x/", "count": 1, "concurrency": 0},
        {"url": "http://x/", "count": 1, "timeout": 0},
        {"url": "http://x/", "count": 1, "headers": {"a": 1}},
        {"url": "http://x/", "count": 1, "bogus": True},
    ],
)
async def test_client_run_rejects_bad_input(
    client_api: HttpListener, http: aiohttp.ClientSession, body: object
) -> None:
    status, answer = await run(http, client_api, body)
    assert status == 400
    assert answer["error"]


async def test_client_run_rejects_non_json(
    client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{base(client_api)}/run", data=b"{nope") as response:
        assert response.status == 400
        assert (await response.json())["error"] == "body must be JSON"


# --- client: probes -------------------------------------------------------------------


async def test_client_dns_resolves_localhost(
    client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    status, body = await get_json(http, f"{base(client_api)}/dns", params={"name": "localhost"})
    assert status == 200
    assert body["name"] == "localhost"
    assert "127.0.0.1" in body["addresses"]


async def test_client_dns_answers_nxdomain_for_invalid_tld(
    client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    name = "no-such-host.isthmus.invalid"
    status, body = await get_json(http, f"{base(client_api)}/dns", params={"name": name})
    assert status == 200
    assert body["name"] == name
    assert body["error"].startswith("NXDOMAIN")
    assert "addresses" not in body


async def test_client_dns_reports_resolver_failures(http: aiohttp.ClientSession) -> None:
    asked: list[str] = []

    async def failing(name: str) -> list[str]:
        asked.append(name)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    listener = await start_client(ClientConfig(host=LOOPBACK, port=0), resolver=failing)
    try:
        url = f"{base(listener)}/dns"
        status, body = await get_json(http, url, params={"name": "web.demo.svc.east"})
        assert asked == ["web.demo.svc.east"]
        assert (status, body["error"]) == (200, "NXDOMAIN: Name or service not known")
        status, body = await get_json(http, url)
        assert status == 400
    finally:
        await listener.stop()


async def test_client_tcp_reads_the_servers_hello(
    server: RunningServer, client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    addr = f"{LOOPBACK}:{server.tcp_port}"
    status, body = await get_json(http, f"{base(client_api)}/tcp", params={"addr": addr})
    assert status == 200
    assert body["ok"] is True
    assert body["error"] is None
    assert json.loads(body["line"])["pod"] == "web-0"


async def test_client_tcp_can_speak_first(
    server: RunningServer, client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    """With ``send`` the client writes its line first; the echo server still says hello."""
    addr = f"{LOOPBACK}:{server.tcp_port}"
    url = f"{base(client_api)}/tcp"
    status, body = await get_json(http, url, params={"addr": addr, "send": "ping"})
    assert status == 200
    assert body["ok"] is True
    assert json.loads(body["line"])["pod"] == "web-0"
    status, bad = await get_json(http, url, params={"addr": addr, "send": "two\nlines"})
    assert status == 400
    assert "send" in bad["error"]


async def test_client_tcp_reports_failures(
    server: RunningServer, client_api: HttpListener, http: aiohttp.ClientSession
) -> None:
    url = f"{base(client_api)}/tcp"
    _, refused = await get_json(http, url, params={"addr": f"{LOOPBACK}:{closed_port()}"})
    assert refused["ok"] is False
    assert refused["error"].startswith("ConnectError")
    silent = {"addr": f"{LOOPBACK}:{server.port}", "timeout": "0.2"}
    _, timed_out = await get_json(http, url, params=silent)
    assert (timed_out["ok"], timed_out["line"]) == (False, None)
    assert timed_out["error"].startswith("Timeout")


@pytest.mark.parametrize(
    "query", [{}, {"addr": "nohost"}, {"addr": "h:0"}, {"addr": "h:1", "timeout": "x"}]
)
async def test_client_tcp_rejects_bad_input(
    client_api: HttpListener, http: aiohttp.ClientSession, query: dict[str, str]
) -> None:
    status, body = await get_json(http, f"{base(client_api)}/tcp", params=query)
    assert status == 400
    assert body["error"]


async def test_client_healthz(client_api: HttpListener, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{base(client_api)}/healthz") as response:
        assert response.status == 200


# --- pure functions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([4.0, 3.0, 2.0, 1.0], 100, 4.0),
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 101)], 50, 50.0),
        ([float(v) for v in range(1, 11)], 99, 10.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_percentile_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 0)


def test_schedule_is_open_loop() -> None:
    assert schedule(4, 2) == [0.0, 0.5, 1.0, 1.5]
    assert schedule(3, 0) == [0.0, 0.0, 0.0]
    assert schedule(0, 10) == []


def test_summary_counts_ok_errors_and_latency_of_answered_requests() -> None:
    def record(i: int, status: int | None, latency: float | None, error: str | None) -> Record:
        return {"i": i, "status": status, "latency_ms": latency, "responder": None, "error": error}

    records = [
        record(0, 200, 1.0, None),
        record(1, 204, 3.0, None),
        record(2, 503, 2.0, None),
        record(3, None, 900.0, "Timeout"),
        record(4, 200, 5.0, "PayloadError: cut short"),
    ]
    assert summarize(records, 1.23456) == {
        "count": 5,
        "ok": 2,
        "errors": 2,
        "p50_ms": 2.0,
        "p99_ms": 5.0,
        "duration_s": 1.235,
    }


def test_parse_run_spec_applies_defaults() -> None:
    spec = parse_run_spec({"url": "http://web.demo.svc.east:8080/", "count": 5})
    assert (spec.rate, spec.concurrency, spec.timeout, dict(spec.headers)) == (0.0, 8, 5.0, {})


def test_parse_run_spec_bounds_duration() -> None:
    settings = Settings(max_run_duration=10)
    assert parse_run_spec({"url": "http://x/", "count": 11, "rate": 1}, settings).count == 11
    with pytest.raises(SpecError, match="must fit in 10 s"):
        parse_run_spec({"url": "http://x/", "count": 12, "rate": 1}, settings)


def test_parse_responder() -> None:
    body = {"pod": "p", "namespace": "n", "cluster": None, "client_id": None, "extra": 1}
    assert parse_responder(json.dumps(body).encode()) == {
        "pod": "p",
        "namespace": "n",
        "cluster": None,
        "client_id": None,
        "remote": None,
    }
    with_remote = {**body, "remote": "10.23.0.5"}
    assert parse_responder(json.dumps(with_remote).encode())["remote"] == "10.23.0.5"
    assert parse_responder(b'{"pod": "p"}') is None
    assert parse_responder(b"ok") is None
    assert parse_responder(b"\xff\xfe") is None
    assert parse_responder(b'["pod", "namespace", "cluster", "client_id"]') is None


def test_describe_error_is_short() -> None:
    assert describe_error("Timeout", "") == "Timeout"
    assert describe_error("ConnectError", "refused") == "ConnectError: refused"
    assert len(describe_error("X", "y" * 1000, Settings(max_error_chars=20))) == 20


@pytest.mark.parametrize(
    ("path", "expected"), [("/", 200), ("/status/503", 503), ("/status/418/", 418), ("/x", 200)]
)
def test_status_for_path(path: str, expected: int) -> None:
    assert status_for_path(path) == expected


def test_delay_seconds() -> None:
    assert delay_seconds(None) == 0.0
    assert delay_seconds("250") == 0.25
    with pytest.raises(BadRequest):
        delay_seconds("600001")


@pytest.mark.parametrize(
    ("addr", "expected"),
    [("web:80", ("web", 80)), ("10.0.0.1:4143", ("10.0.0.1", 4143)), ("[::1]:9", ("::1", 9))],
)
def test_parse_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_addr(addr) == expected


@pytest.mark.parametrize(
    ("name", "invalid"),
    [("x.invalid", True), ("X.INVALID.", True), ("invalid", True), ("invalid.example", False)],
)
def test_is_reserved_invalid(name: str, invalid: bool) -> None:
    assert is_reserved_invalid(name) is invalid


def test_pod_info_from_env_falls_back_to_hostname() -> None:
    info = PodInfo.from_env({"POD_NAMESPACE": "demo"})
    assert info.fields() == {
        "pod": socket.gethostname(),
        "namespace": "demo",
        "cluster": None,
        "pod_ip": None,
    }
