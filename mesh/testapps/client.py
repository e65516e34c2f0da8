"""The load client: an HTTP control API that drives traffic and probes from its pod.

  POST /run          run a load (see ``loadgen.parse_run_spec``); records and a summary
  GET  /dns?name=    system-resolver lookup; NXDOMAIN is an answer (200), not a failure
  GET  /tcp?addr=    connect, read the first line; ``timeout`` seconds optional; ``send``
                     text written first, plus a newline (a client-speaks-first protocol)
  GET  /token        the pod's projected service-account token (for TokenReview tests)
  GET  /healthz      200 ``ok``
A request the API cannot accept gets 400 with ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from mesh.testapps.lifecycle import HttpListener, listen_http, wait_for_termination
from mesh.testapps.loadgen import SpecError, parse_run_spec
from mesh.testapps.probes import (
    Resolver,
    check_name,
    first_line,
    lookup,
    parse_addr,
    system_resolve,
)
from mesh.testapps.runner import execute
from mesh.testapps.settings import SETTINGS, Settings

log = logging.getLogger(__name__)

_RESOLVER_KEY: web.AppKey[Resolver] = web.AppKey("resolver")
_SETTINGS_KEY = web.AppKey("settings", Settings)


@dataclass(frozen=True)
class ClientConfig:
    host: str = "0.0.0.0"
    port: int = 9090


def make_app(resolver: Resolver = system_resolve, settings: Settings = SETTINGS) -> web.Application:
    app = web.Application()
    app[_RESOLVER_KEY] = resolver
    app[_SETTINGS_KEY] = settings
    app.router.add_post("/run", _run)
    app.router.add_get("/dns", _dns)
    app.router.add_get("/tcp", _tcp)
    app.router.add_get("/token", _token)
    app.router.add_get("/healthz", _healthz)
    return app


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _run(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS_KEY]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _bad_request("body must be JSON")
    try:
        spec = parse_run_spec(body, settings)
    except SpecError as exc:
        return _bad_request(str(exc))
    log.info("run: %d x GET %s at %g/s", spec.count, spec.url, spec.rate)
    result = await execute(spec, settings)
    log.info("run done: %s", result["summary"])
    return web.json_response(result)


async def _dns(request: web.Request) -> web.Response:
    try:
        name = check_name(request.query.get("name"))
    except ValueError as exc:
        return _bad_request(str(exc))
    answer = await lookup(name, request.app[_RESOLVER_KEY], request.app[_SETTINGS_KEY])
    return web.json_response(answer)


async def _tcp(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS_KEY]
    try:
        host, port = parse_addr(request.query.get("addr"))
        timeout = _probe_timeout(request.query.get("timeout"), settings)
    except ValueError as exc:
        return _bad_request(str(exc))
    text = request.query.get("send", "")
    if len(text) > settings.max_line_bytes or "\n" in text:
        return _bad_request(f"send must be one line of at most {settings.max_line_bytes} bytes")
    send = (text + "\n").encode() if text else b""
    return web.json_response(await first_line(host, port, timeout, settings, send))


def _probe_timeout(raw: str | None, settings: Settings) -> float:
    if raw is None:
        return settings.tcp_probe
    try:
        timeout = float(raw)
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, not {raw!r}") from None
    if not 0 < timeout <= settings.max_request_timeout:
        raise ValueError(f"timeout must be > 0 and <= {settings.max_request_timeout:g}")
    return timeout


SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


async def _token(request: web.Request) -> web.Response:
    try:
        token = await asyncio.to_thread(SA_TOKEN.read_text)
        return web.json_response({"token": token.strip()})
    except OSError as exc:
        return web.json_response({"error": f"cannot read {SA_TOKEN}: {exc}"}, status=404)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def start_client(
    config: ClientConfig, resolver: Resolver = system_resolve, settings: Settings = SETTINGS
) -> HttpListener:
    return await listen_http(
        make_app(resolver, settings),
        config.host,
        config.port,
        shutdown_grace=settings.shutdown_grace,
    )


async def serve(config: ClientConfig, settings: Settings = SETTINGS) -> None:
    """Run the control API until SIGTERM or SIGINT, then shut down gracefully."""
    listener = await start_client(config, settings=settings)
    log.info("client listening: http=%s:%d", config.host, listener.port)
    try:
        signum = await wait_for_termination()
        log.info("client stopping on %s", signum.name)
    finally:
        await listener.stop()
    log.info("client stopped")
