"""``slow_cooker``: the load generator behind the ``buoyantio/slow_cooker`` image.

Its upstream module cannot be had here, so this program takes slow_cooker's flags
(Go ``flag`` syntax: ``-qps 10``, ``--qps=10``) and does what it does: ``concurrency``
workers each send one request every ``1/qps`` seconds to the URL, forever (or until
``-totalRequests``), reusing connections, with an ``Sc-Req-Id`` header and Go's
client headers; a report line every ``-interval`` on stdout; transport errors on
stderr; ``-metric-addr`` serves ``requests``, ``successes`` and ``latency_ms`` in
Prometheus text. SIGINT prints the latency summary and exits 0. A worker whose
request outlives its tick sends the next one at once and then keeps its pace (Go's
ticker drops the ticks it missed). ``-reportLatenciesCSV`` is refused: it is not here.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from mesh.testapps.goflags import Flag, FlagError, parse_bool, parse_duration, parse_flags, usage
from mesh.testapps.slow_cooker_report import Window, header_lines

EXIT_USAGE = 64
FLAGS = (
    Flag("qps", "1", "QPS to send to backends per request thread"),
    Flag("concurrency", "1", "Number of request threads"),
    Flag("host", "", "value of Host header to set"),
    Flag("method", "GET", "HTTP method to use"),
    Flag("interval", "10s", "reporting interval"),
    Flag("noreuse", "false", "don't reuse connections", boolean=True),
    Flag("compress", "false", "use compression", boolean=True),
    Flag("noLatencySummary", "false", "suppress the final latency summary", boolean=True),
    Flag("reportLatenciesCSV", "", "filename to output hdrhistogram latencies in CSV"),
    Flag("help", "false", "show help message", boolean=True),
    Flag("totalRequests", "0", "total number of requests to send before exiting"),
    Flag("header", "", "HTTP request header. (can be repeated.)", repeated=True),
    Flag("data", "", "HTTP request data"),
    Flag("metric-addr", "", "address to serve metrics on"),
    Flag("hashValue", "0", "fnv-1a hash value to check the request body against"),
    Flag("hashSampleRate", "0.0", "Sampe Rate for checking request body's hash"),
)
#: the latency histogram's buckets (ms): 50 exponential buckets from 0.5 ms.
LATENCY_BUCKETS = tuple(0.5 * 1.3**i for i in range(50))


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Options:
    url: str
    qps: int
    concurrency: int
    method: str
    interval: float
    hosts: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    data: bytes
    noreuse: bool
    compress: bool
    summary: bool
    total: int
    metric_addr: str
    hash_value: int
    hash_rate: float


def _int(name: str, text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise FlagError(f'invalid value "{text}" for flag -{name}: parse error') from None


def parse_options(argv: Sequence[str]) -> Options:
    """slow_cooker's command line; raise FlagError (exit 2) or UsageError (exit 64)."""
    p = parse_flags(FLAGS, argv)
    v = p.values
    if parse_bool(v["help"]):
        raise UsageError("")
    if len(p.args) != 1:
        raise UsageError(
            "Expecting one argument: the target url to test, e.g. http://localhost:4140/"
        )
    url = p.args[0]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid URL: '{url}': only http(s)://host[:port]/path is supported")
    qps, concurrency = _int("qps", v["qps"]), _int("concurrency", v["concurrency"])
    if qps < 1:
        raise UsageError("qps must be at least 1")
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    if v["reportLatenciesCSV"]:
        raise UsageError("-reportLatenciesCSV is not supported by this slow_cooker")
    headers = []
    for h in p.lists.get("header", []):
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise FlagError(f'invalid value "{h}" for flag -header: Header invalid')
        headers.append((name.strip(), value.strip()))
    data = v["data"]
    if data.startswith("@"):
        path = data[1:]
        payload = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
    else:
        payload = data.encode()
    return Options(
        url=url,
        qps=qps,
        concurrency=concurrency,
        method=v["method"],
        interval=parse_duration(v["interval"]),
        hosts=tuple(v["host"].split(",")),
        headers=tuple(headers),
        data=payload,
        noreuse=parse_bool(v["noreuse"]),
        compress=parse_bool(v["compress"]),
        summary=not parse_bool(v["noLatencySummary"]),
        total=_int("totalRequests", v["totalRequests"]),
        metric_addr=v["metric-addr"],
        hash_value=_int("hashValue", v["hashValue"]),
        hash_rate=float(v["hashSampleRate"]),
    )


def _nameserver(resolv_conf: str = "/etc/resolv.conf") -> str:
    try:
        with open(resolv_conf) as f:
            for line in f:
                parts = line.split()
                if parts[:1] == ["nameserver"] and len(parts) > 1:
                    return parts[1]
    except OSError:
        pass
    return ""


def go_error(e: BaseException) -> str:
    """A transport error worded as Go's net/http words it (DNS and refused connections)."""
    if isinstance(e, aiohttp.ClientConnectorError):
        cause = e.os_error
        if isinstance(cause, socket.gaierror):
            ns = _nameserver()
            on = f" on {ns}:53" if ns else ""
            return f"dial tcp: lookup {e.host}{on}: no such host"
        if isinstance(cause, ConnectionRefusedError):
            return f"dial tcp {e.host}:{e.port}: connect: connection refused"
        if isinstance(cause, TimeoutError):
            return f"dial tcp {e.host}:{e.port}: i/o timeout"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "EOF"
    return str(e) or type(e).__name__


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Metrics:
    """The three series slow_cooker exports, in Prometheus text format."""

    def __init__(self) -> None:
        self.requests = 0
        self.successes = 0
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.sum = 0.0

    def observe(self, latency_ms: int) -> None:
        self.sum += latency_ms
        for i, bound in enumerate(LATENCY_BUCKETS):
            if latency_ms <= bound:
                self.buckets[i] += 1

    def text(self) -> str:
        lines = [
            "# HELP latency_ms RPC latency distributions in milliseconds.",
            "# TYPE latency_ms histogram",
        ]
        lines += [
            f'latency_ms_bucket{{le="{bound!r}"}} {n}'
            for bound, n in zip(LATENCY_BUCKETS, self.buckets, strict=True)
        ]
        lines += [
            f'latency_ms_bucket{{le="+Inf"}} {self.successes}',
            f"latency_ms_sum {self.sum!r}",
            f"latency_ms_count {self.successes}",
            "# HELP requests Number of requests",
            "# TYPE requests counter",
            f"requests {self.requests}",
            "# HELP successes Number of successful requests",
            "# TYPE successes counter",
            f"successes {self.successes}",
        ]
        return "\n".join(lines) + "\n"


class Cooker:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.window = Window(opts.qps, opts.concurrency, opts.interval)
        self.metrics = Metrics()
        self.req_id = 0
        self.stop = asyncio.Event()

    async def _one(self, session: aiohttp.ClientSession) -> None:
        o = self.opts
        self.req_id += 1
        headers = {"User-Agent": "Go-http-client/1.1", "Sc-Req-Id": str(self.req_id)}
        if o.compress:
            headers["Accept-Encoding"] = "gzip"
        host = random.choice(o.hosts)
        if host:
            headers["Host"] = host
        headers.update(dict(o.headers))
        check = o.hash_rate > 0 and random.random() < o.hash_rate
        started = time.monotonic()
        self.metrics.requests += 1
        try:
            async with session.request(
                o.method, o.url, data=o.data, headers=headers, ssl=False
            ) as resp:
                latency = int((time.monotonic() - started) * 1000)
                body = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            print(f'{o.method.capitalize()} "{o.url}": {go_error(e)}', file=sys.stderr)
            self.window.record(None)
            return
        self.window.record(resp.status, latency, not check or fnv1a64(body) == o.hash_value)
        if 200 <= resp.status < 500:
            self.metrics.successes += 1
            self.metrics.observe(latency)

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        period = 1.0 / self.opts.qps
        next_tick = time.monotonic() + period
        while not self.stop.is_set():
            delay = next_tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            missed = max(int((now - next_tick) / period), 0)
            next_tick += period * (missed + 1)
            await self._one(session)

    async def _reporter(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(self.opts.interval)
            print(self.window.report(datetime.now().astimezone()), flush=True)
            if self.opts.total and self.req_id > self.opts.total:
                self.stop.set()

    async def _serve_metrics(self) -> web.AppRunner:
        host, _, port = self.opts.metric_addr.rpartition(":")

        async def handle(_: web.Request) -> web.Response:
            return web.Response(text=self.metrics.text(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host or None, int(port)).start()
        return runner

    async def run(self) -> None:
        o = self.opts
        for line in header_lines(
            o.qps, o.concurrency, o.method, o.url, o.interval, datetime.now().astimezone()
        ):
            print(line, flush=True)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        runner = await self._serve_metrics() if o.metric_addr else None
        connector = aiohttp.TCPConnector(limit=0, force_close=o.noreuse)
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=o.compress,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        tasks = [asyncio.create_task(self._worker(session)) for _ in range(o.concurrency)]
        tasks.append(asyncio.create_task(self._reporter()))
        try:
            await self.stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()
            if runner is not None:
                await runner.cleanup()
        if o.summary:
            print(self.window.summary(), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        opts = parse_options(args)
    except FlagError as e:
        print(f"{e}\n{usage('slow_cooker', '<url> [flags]', FLAGS)}", end="", file=sys.stderr)
        sys.exit(2)
    except UsageError as e:
        if str(e):
            print(f"{e}\nTry --help for help.", file=sys.stderr)
        else:
            print(usage("slow_cooker", "<url> [flags]", FLAGS), end="", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except OSError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    asyncio.run(Cooker(opts).run())


if __name__ == "__main__":
    main()
