"""``bb`` (Buoyant's building blocks): the server behind the ``buoyantio/bb`` image.

Its upstream module cannot be had here, so this program takes bb's command line
(``bb terminus --h1-server-port=P --response-text=T``, cobra/pflag syntax) and
answers as bb's terminus does:
- HTTP/1.1 on ``--h1-server-port``: any method and path; a request with a body must be
  bb's JSON ``TheRequest`` (else 500 with the error text); the answer is 200 with the
  JSON ``TheResponse`` ``{"requestUID":…,"payload":…}`` as protobuf's JSON mapping
  writes it (empty fields left out), ``Content-Type: text/plain; charset=utf-8``;
- gRPC on ``--grpc-server-port``: ``buoyantio.bb.TheService/theFunction``;
- ``--percent-failure`` fails that share of requests (HTTP 500 / gRPC UNKNOWN),
  ``--sleep-in-millis`` delays each, ``--terminate-after`` exits after that many;
- logs in logrus' text format on stderr; SIGTERM/SIGINT stop it with exit 0.
Only ``terminus`` is here: the strategies that call downstream services are refused
with a clear message rather than imitated.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus

import grpc
import h11

from mesh.testapps.slow_cooker_report import rfc3339

UPSTREAM_ONLY = ("point-to-point-channel", "broadcast-channel", "http-egress")
_MAX_BODY = 1 << 20


class UsageError(Exception):
    pass


@dataclass
class Config:
    strategy: str
    id: str = ""
    grpc_port: int = -1
    h1_port: int = -1
    percent_failure: int = 0
    sleep_ms: int = 0
    terminate_after: int = 0
    log_level: str = "info"
    response_text: str = ""
    unused: str = ""


_INT_FLAGS = {
    "grpc-server-port": "grpc_port",
    "h1-server-port": "h1_port",
    "percent-failure": "percent_failure",
    "sleep-in-millis": "sleep_ms",
    "terminate-after": "terminate_after",
}
_STR_FLAGS = {
    "id": "id",
    "log-level": "log_level",
    "response-text": "response_text",
    # accepted as bb does; they matter only to strategies that call downstream
    "fire-and-forget": "unused",
    "grpc-proxy": "unused",
    "downstream-timeout": "unused",
}
_DOWNSTREAM = ("grpc-downstream-server", "h1-downstream-server")
_LEVELS = ("panic", "fatal", "error", "warn", "warning", "info", "debug", "trace")


def parse_args(argv: Sequence[str]) -> Config:
    """bb's command line (pflag: ``--name=value`` or ``--name value``)."""
    args = list(argv)
    if not args or args[0].startswith("-"):
        raise UsageError("bb needs a strategy: bb terminus --h1-server-port=8080 ...")
    strategy = args.pop(0)
    if strategy in UPSTREAM_ONLY:
        raise UsageError(f"strategy [{strategy}] is not available here: only terminus is")
    if strategy != "terminus":
        raise UsageError(f'unknown command "{strategy}" for "bb"')
    cfg = Config(strategy)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise UsageError(f'unknown command "{arg}" for "bb {strategy}"')
        name, has_value, value = arg[2:].partition("=")
        i += 1
        if name == "fire-and-forget" and not has_value:
            continue
        if name in _DOWNSTREAM:
            raise UsageError(
                f"strategy [{strategy}] requires at least one server port and exactly zero "
                "downstream services"
            )
        if name not in _INT_FLAGS and name not in _STR_FLAGS:
            raise UsageError(f"unknown flag: --{name}")
        if not has_value:
            if i >= len(args):
                raise UsageError(f"flag needs an argument: --{name}")
            value, i = args[i], i + 1
        if name in _INT_FLAGS:
            try:
                setattr(cfg, _INT_FLAGS[name], int(value))
            except ValueError:
                raise UsageError(f'invalid argument "{value}" for "--{name}" flag') from None
        else:
            setattr(cfg, _STR_FLAGS[name], value)
    if cfg.log_level not in _LEVELS:
        raise UsageError(f"invalid log-level: {cfg.log_level}")
    if cfg.grpc_port == -1 and cfg.h1_port == -1:
        raise UsageError(
            f"strategy [{strategy}] requires at least one server port and exactly zero "
            "downstream services"
        )
    if not cfg.id:
        cfg.id = f"{strategy}-grpc:{cfg.grpc_port}-h1:{cfg.h1_port}"
    return cfg


def go_json(value: str) -> str:
    """A JSON string as Go writes it (HTML-safe escapes, UTF-8 kept)."""
    text = json.dumps(value, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def response_json(request_uid: str, payload: str) -> str:
    fields = [(k, v) for k, v in (("requestUID", request_uid), ("payload", payload)) if v]
    return "{" + ",".join(f'"{k}":{go_json(v)}' for k, v in fields) + "}"


def log_line(level: str, msg: str, now: datetime | None = None) -> str:
    """One logrus text-formatter line."""
    t = rfc3339(now or datetime.now().astimezone())
    return f'time="{t}" level={level} msg={json.dumps(msg)}'


def _pb_string(field_no: int, value: str) -> bytes:
    raw = value.encode()
    out = bytearray([(field_no << 3) | 2])
    n = len(raw)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + raw


def pb_request_uid(data: bytes) -> str:
    """Field 1 (requestUID) of a ``TheRequest``; other fields are skipped."""
    i, uid = 0, ""
    while i < len(data):
        key, i = _varint(data, i)
        wire = key & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            if key >> 3 == 1:
                uid = data[i : i + n].decode()
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return uid


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated protobuf varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


class Terminus:
    """The protocol-independent handler: strategy, failures, delay, request count."""

    def __init__(self, cfg: Config, stop: asyncio.Event) -> None:
        self.cfg, self.stop, self.count = cfg, stop, 0

    def new_uid(self, kind: str) -> str:
        return f"in:{kind}-sid:{self.cfg.id}-{time.time_ns() % 1_000_000_000}"

    async def handle(self, uid: str) -> str:
        """The payload for a request; raise RuntimeError for an injected failure."""
        if self.cfg.sleep_ms:
            await asyncio.sleep(self.cfg.sleep_ms / 1000)
        if random.randrange(100) < self.cfg.percent_failure:
            raise RuntimeError(f"this error was injected by [{self.cfg.id}]")
        self.count += 1
        if self.cfg.terminate_after and self.count == self.cfg.terminate_after:
            log("info", f"TerminateAfter limit hit ({self.count}), stopping [{self.cfg.id}]")
            self.stop.set()
        return self.cfg.response_text or f"terminus at [{time.time_ns() % 1_000_000_000}]"


def log(level: str, msg: str) -> None:
    print(log_line(level, msg), file=sys.stderr, flush=True)


async def _h1_answer(term: Terminus, method: str, target: str, body: bytes) -> tuple[int, str]:
    if body:
        try:
            raw = json.loads(body)
            if not isinstance(raw, dict):
                raise ValueError
            uid = str(raw.get("requestUID", raw.get("request_uid", "")))
        except ValueError:
            msg = f"error unmarshalling the request: {body.decode(errors='replace')}"
            log("error", f"Error while handling HTTP request: {msg}")
            return 500, msg + "\n"
    else:
        uid = term.new_uid("http")
        log("info", f"Received request with empty body, assigning new request UID [{uid}] to it")
    try:
        payload = await term.handle(uid)
    except RuntimeError as e:
        msg = f"error handling http request: {e}"
        log("error", f"Error while handling HTTP request: {msg}")
        return 500, msg + "\n"
    log(
        "info",
        f"Received HTTP request [{uid}] [{method} {target}] Body [requestUID:{json.dumps(uid)}] "
        f"Returning response [requestUID:{json.dumps(uid)} payload:{json.dumps(payload)}]",
    )
    return 200, response_json(uid, payload)


async def _serve_h1_conn(
    term: Terminus, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.SEND_BODY:
                    return
                continue
            if isinstance(event, h11.Request):
                body = b""
                while True:
                    nxt = conn.next_event()
                    if nxt is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                    elif isinstance(nxt, h11.Data):
                        body += nxt.data
                        if len(body) > _MAX_BODY:
                            return
                    elif isinstance(nxt, h11.EndOfMessage):
                        break
                    else:
                        return
                status, text = await _h1_answer(
                    term, event.method.decode(), event.target.decode(), body
                )
                payload = text.encode()
                headers = [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Date", _http_date()),
                    ("Content-Length", str(len(payload))),
                ]
                if status != 200:
                    headers.insert(1, ("X-Content-Type-Options", "nosniff"))
                reason = HTTPStatus(status).phrase.encode()
                response = h11.Response(status_code=status, headers=headers, reason=reason)
                writer.write(conn.send(response) or b"")
                writer.write(conn.send(h11.Data(data=payload)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
            else:
                return
    except (h11.RemoteProtocolError, ConnectionError):
        return
    finally:
        writer.close()


def _http_date() -> str:
    from email.utils import formatdate

    return formatdate(usegmt=True)


async def _serve_grpc(term: Terminus, port: int) -> grpc.aio.Server:
    async def the_function(request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        uid = pb_request_uid(request) or term.new_uid("grpc")
        try:
            payload = await term.handle(uid)
        except RuntimeError as e:
            await context.abort(grpc.StatusCode.UNKNOWN, str(e))
        return _pb_string(1, uid) + _pb_string(2, payload)

    handler = grpc.method_handlers_generic_handler(
        "buoyantio.bb.TheService",
        {"theFunction": grpc.unary_unary_rpc_method_handler(the_function)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"[::]:{port}")
    await server.start()
    return server


async def run(cfg: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    term = Terminus(cfg, stop)
    grpc_server: grpc.aio.Server | None = None
    h1: asyncio.Server | None = None
    servers: list[str] = []
    try:
        if cfg.grpc_port != -1:
            grpc_server = await _serve_grpc(term, cfg.grpc_port)
            log("info", f"gRPC server listening on port [{cfg.grpc_port}]")
            servers.append(f"grpc-{cfg.grpc_port}")
        if cfg.h1_port != -1:
            h1 = await asyncio.start_server(
                lambda r, w: _serve_h1_conn(term, r, w), host=None, port=cfg.h1_port
            )
            log("info", f"HTTP 1.1 server listening on port [{cfg.h1_port}]")
            servers.append(f"h1-{cfg.h1_port}")
        log(
            "info",
            f"Process configured as: &{{Servers:[{' '.join(servers)}] Clients:[] "
            f"Strategy:{cfg.strategy}}}",
        )
        log("info", f"Service [{cfg.id}] is ready and waiting for incoming connections")
        await stop.wait()
    finally:
        if h1 is not None:
            log("info", f"Shutting down [h1-{cfg.h1_port}]")
            h1.close()
        if grpc_server is not None:
            log("info", f"Shutting down [grpc-{cfg.grpc_port}]")
            await asyncio.shield(grpc_server.stop(grace=None))


def main(argv: Sequence[str] | None = None) -> None:
    try:
        cfg = parse_args(sys.argv[1:] if argv is None else argv)
    except (UsageError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(1)
    asyncio.run(run(cfg))


if __name__ == "__main__":
    main()
