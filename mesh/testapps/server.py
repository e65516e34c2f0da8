"""The echo server: answers every request with who it is and what it saw.

HTTP routes, any method:
  /healthz         200 ``ok`` (plain text, never delayed)
  /status/<code>   that status code (200-599) with the identity body
  anything else    200 with the identity body
Every identity answer honours ``?delay_ms=`` before answering. With a TCP port the
server also accepts raw connections: it writes a one-line JSON hello carrying the same
identity fields, then echoes whatever it receives until the peer closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from contextlib import suppress
from dataclasses import dataclass

from aiohttp import web

from mesh.testapps.lifecycle import HttpListener, listen_http, wait_for_termination
from mesh.testapps.podinfo import IdentityFields, PodInfo
from mesh.testapps.settings import SETTINGS, Settings

log = logging.getLogger(__name__)

#: the header a meshed proxy adds to tell the application its client's identity.
CLIENT_ID_HEADER = "l5d-client-id"

_STATUS_PATH = re.compile(r"/status/(?P<code>[0-9]{1,3})/?")
_BODYLESS_STATUSES = frozenset({204, 304})
_ECHO_CHUNK = 64 * 1024

_POD_INFO_KEY = web.AppKey("pod_info", PodInfo)
_SETTINGS_KEY = web.AppKey("settings", Settings)


class HttpAnswer(IdentityFields):
    client_id: str | None
    method: str
    path: str
    host: str | None
    remote: str | None


class TcpHello(IdentityFields):
    remote: str | None


class BadRequest(ValueError):
    """The request asks for something the server will not do; the text says what."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    #: raw TCP echo port; ``None`` serves no TCP, 0 picks a free port.
    tcp_port: int | None = None


def status_for_path(path: str) -> int:
    """The status code a path asks for: ``/status/<code>`` names one, others mean 200."""
    match = _STATUS_PATH.fullmatch(path)
    if match is None:
        return 200
    code = int(match["code"])
    if not 200 <= code <= 599:
        raise BadRequest(f"status code must be within 200-599, not {code}")
    return code


def delay_seconds(raw: str | None, settings: Settings = SETTINGS) -> float:
    """Seconds to wait before answering, from a ``delay_ms`` query value."""
    if raw is None:
        return 0.0
    try:
        delay_ms = float(raw)
    except ValueError:
        raise BadRequest(f"delay_ms must be a number of milliseconds, not {raw!r}") from None
    if not 0 <= delay_ms <= settings.max_delay_ms:
        raise BadRequest(f"delay_ms must be within 0-{settings.max_delay_ms:g}")
    return delay_ms / 1000


def make_app(info: PodInfo, settings: Settings = SETTINGS) -> web.Application:
    app = web.Application()
    app[_POD_INFO_KEY] = info
    app[_SETTINGS_KEY] = settings
    app.router.add_route("*", "/{tail:.*}", _answer)
    return app


async def _answer(request: web.Request) -> web.StreamResponse:
    if request.path == "/healthz":
        return web.Response(text="ok")
    settings = request.app[_SETTINGS_KEY]
    try:
        status = status_for_path(request.path)
        delay = delay_seconds(request.query.get("delay_ms"), settings)
    except BadRequest as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if delay:
        await asyncio.sleep(delay)
    if status in _BODYLESS_STATUSES:
        return web.Response(status=status)
    body: HttpAnswer = {
        **request.app[_POD_INFO_KEY].fields(),
        "client_id": request.headers.get(CLIENT_ID_HEADER),
        "method": request.method,
        "path": request.path,
        "host": request.headers.get("Host"),
        "remote": request.remote,
    }
    return web.json_response(body, status=status)


class TcpEcho:
    """Raw TCP listener: a JSON hello line, then an echo of every byte received."""

    def __init__(self, info: PodInfo) -> None:
        self._info = info
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` and return the bound port."""
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting and close every open connection (an echo has nothing in flight)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            peer = writer.get_extra_info("peername")
            hello: TcpHello = {**self._info.fields(), "remote": str(peer[0]) if peer else None}
            writer.write(json.dumps(hello).encode() + b"\n")
            await writer.drain()
            while chunk := await reader.read(_ECHO_CHUNK):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)


@dataclass
class RunningServer:
    http: HttpListener
    tcp: TcpEcho | None
    tcp_port: int | None

    @property
    def port(self) -> int:
        return self.http.port

    async def stop(self) -> None:
        """Stop accepting everywhere; in-flight HTTP requests finish within the grace."""
        if self.tcp is not None:
            await self.tcp.stop()
        await self.http.stop()


async def start_server(
    config: ServerConfig, info: PodInfo, settings: Settings = SETTINGS
) -> RunningServer:
    http = await listen_http(
        make_app(info, settings), config.host, config.port, shutdown_grace=settings.shutdown_grace
    )
    if config.tcp_port is None:
        return RunningServer(http=http, tcp=None, tcp_port=None)
    tcp = TcpEcho(info)
    try:
        tcp_port = await tcp.start(config.host, config.tcp_port)
    except BaseException:
        await http.stop()
        raise
    return RunningServer(http=http, tcp=tcp, tcp_port=tcp_port)


async def serve(config: ServerConfig, info: PodInfo, settings: Settings = SETTINGS) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start_server(config, info, settings)
    log.info(
        "server listening: http=%s:%d tcp=%s pod=%s",
        config.host,
        running.port,
        running.tcp_port,
        info.pod,
    )
    try:
        signum = await wait_for_termination()
        log.info("server stopping on %s", signum.name)
    finally:
        await running.stop()
    log.info("server stopped")
