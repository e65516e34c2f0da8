"""slow_cooker's command line, report lines and load, against the project's bb."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from datetime import UTC, datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from mesh.testapps import bb, slow_cooker
from mesh.testapps.goflags import FlagError
from mesh.testapps.slow_cooker_report import (
    Window,
    change_indicator,
    header_lines,
    rfc3339,
    value_at_quantile,
)

T = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def test_options_take_go_flag_syntax() -> None:
    o = slow_cooker.parse_options(["--qps", "10", "-concurrency=3", "http://bb-target:8080"])
    assert (o.qps, o.concurrency, o.url, o.interval, o.method) == (
        10,
        3,
        "http://bb-target:8080",
        10.0,
        "GET",
    )
    o = slow_cooker.parse_options(
        ["-header", "X-A: b", "-host", "a,b", "-interval", "1s", "http://h"]
    )
    assert (o.headers, o.hosts, o.interval) == ((("X-A", "b"),), ("a", "b"), 1.0)


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        ([], slow_cooker.UsageError, "Expecting one argument"),
        (["-qps", "0", "http://x"], slow_cooker.UsageError, "qps must be at least 1"),
        (["-concurrency", "0", "http://x"], slow_cooker.UsageError, "concurrency must be"),
        (["-qps", "ten", "http://x"], FlagError, 'invalid value "ten" for flag -qps'),
        (["-header", "nocolon", "http://x"], FlagError, "Header invalid"),
    ],
)
def test_bad_command_lines(argv: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        slow_cooker.parse_options(argv)


def test_the_header_lines_keep_slow_cookers_columns() -> None:
    lines = header_lines(10, 1, "GET", "http://bb:8080", 10.0, T)
    assert lines[0] == "# sending 10 GET req/s with concurrency=1 to http://bb:8080 ..."
    assert lines[1] == (
        "#                      good/b/f t   goal%   min [p50 p95 p99  p999]  max bhash change"
    )


def test_a_report_line_counts_good_bad_failed_and_quantiles() -> None:
    w = Window(qps=10, concurrency=1, interval=10.0)
    for ms in [1] * 90 + [2] * 5:
        w.record(200, ms)
    w.record(404, 3)  # 4xx counts as good, as slow_cooker has it
    w.record(503, 7)
    w.record(None)
    line = w.report(T)
    assert (
        line == "2024-05-01T10:00:00Z     96/1/1 100  97% 10s   1 [  1   2   3    7 ]    7      0 +"
    )
    assert w.report(T) == (
        "2024-05-01T10:00:00Z      0/0/0 100   0% 10s   0 [  0   0   0    0 ]    0      0 "
    )


def test_quantiles_and_change_indicator() -> None:
    assert value_at_quantile([], 50) == 0
    assert value_at_quantile([1, 2, 3, 4], 50) == 2
    assert value_at_quantile([1, 2, 3, 4], 999) == 4
    assert change_indicator([0] * 5, 0) == ""
    assert change_indicator([0] * 5, 5) == "+"
    assert change_indicator([10] * 5, 1000) == "++"
    assert change_indicator([1000] * 5, 1) == "---"
    assert change_indicator([10] * 5, 0) == "-"
    assert rfc3339(datetime(2024, 5, 1, 10, tzinfo=timezone(timedelta(hours=2)))).endswith("+02:00")


def test_fnv1a_matches_the_reference_vector() -> None:
    assert slow_cooker.fnv1a64(b"") == 0xCBF29CE484222325
    assert slow_cooker.fnv1a64(b"a") == 0xAF63DC4C8601EC8C


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_continuous_load_against_bb_reports_every_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = _free_port()
    cfg = bb.parse_args(["terminus", f"--h1-server-port={port}", "--response-text=hello\n"])
    server = asyncio.create_task(bb.run(cfg))
    await asyncio.sleep(0.3)
    opts = slow_cooker.parse_options(
        ["-qps", "20", "-interval", "1s", "-totalRequests", "30", f"http://127.0.0.1:{port}/"]
    )
    try:
        await asyncio.wait_for(slow_cooker.Cooker(opts).run(), 10)
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    out = capsys.readouterr().out.splitlines()
    reports = [line for line in out if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert len(reports) >= 2, out
    good = [int(re.split(r"\s+", r)[1].split("/")[0]) for r in reports]
    assert sum(good) >= 30, out
    assert all(g > 0 for g in good), out
    assert all("/0/0 20 " in r for r in reports), out
    assert '"p50"' in out[-7] or any('"p99"' in line for line in out), out


async def test_transport_errors_are_worded_as_go_words_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = _free_port()  # nothing listens there
    opts = slow_cooker.parse_options(
        ["-qps", "5", "-interval", "1s", "-totalRequests", "3", f"http://127.0.0.1:{port}/"]
    )
    await asyncio.wait_for(slow_cooker.Cooker(opts).run(), 10)
    captured = capsys.readouterr()
    assert (
        f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'
        in captured.err
    ), captured.err
    assert re.search(r"\s+0/0/[1-9]\d* 5 ", captured.out), captured.out


def test_dns_failures_are_worded_as_go_words_them() -> None:
    key = ConnectionKey("bb-target", 8080, False, True, None, None, None)
    err = aiohttp.ClientConnectorError(key, socket.gaierror(-2, "Name or service not known"))
    assert re.fullmatch(
        r"dial tcp: lookup bb-target( on \S+:53)?: no such host", slow_cooker.go_error(err)
    ), slow_cooker.go_error(err)
