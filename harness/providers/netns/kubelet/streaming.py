"""Kubernetes' streaming protocols above SPDY, as rules and data (sans-IO).

What the API server sends a kubelet for ``kubectl exec/attach/port-forward`` and what
it expects back:

- ``POST /exec/{ns}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1``,
  ``POST /attach/{ns}/{pod}/{container}?...`` and ``POST /portForward/{ns}/{pod}``,
  each upgraded to SPDY/3.1; the sub-protocol is negotiated with
  ``X-Stream-Protocol-Version`` (the first the client lists that we speak).
- Remote command: the client opens one stream per channel, named by the
  ``streamType`` header (error, stdin, stdout, stderr, resize); the server waits for
  exactly the streams the query asked for. On ``v4.channel.k8s.io`` the error stream
  carries a ``metav1.Status`` JSON document, with the exit code as an ``ExitCode``
  cause of a ``NonZeroExitCode`` failure; older versions carry a plain message and
  nothing on success. The resize stream is a sequence of ``{"Width","Height"}`` JSON
  objects.
- Port forward (``portforward.k8s.io``): per forwarded connection an error stream
  and a data stream, both with ``port`` and ``requestID`` headers, paired by the
  request id (older clients: by stream id, data = error + 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from harness.providers.netns.kubelet.spdy import Headers

V4, V3, V2, V1 = (
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
REMOTE_COMMAND_PROTOCOLS = (V4, V3, V2, V1)
PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
PORT_FORWARD_PROTOCOLS = (PORT_FORWARD_PROTOCOL,)

ERROR, STDIN, STDOUT, STDERR, RESIZE, DATA = "error", "stdin", "stdout", "stderr", "resize", "data"


class BadRequest(Exception):
    """The request cannot be served; the message is for the client."""


@dataclass(frozen=True)
class StreamRequest:
    """One streaming request: which endpoint, which pod and container, which channels."""

    kind: str  # "exec" | "attach" | "portForward"
    namespace: str
    pod: str
    container: str = ""
    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["0"])[0].lower() in ("1", "true")


def parse_request(target: str) -> StreamRequest:
    """The endpoint named by a request target; :class:`BadRequest` when it is not one."""
    url = urlsplit(target)
    parts = [unquote(s) for s in url.path.strip("/").split("/")]
    query = parse_qs(url.query, keep_blank_values=True)
    kind = parts[0] if parts else ""
    if kind == "portForward":
        if len(parts) != 3:
            raise BadRequest("expected /portForward/{namespace}/{pod}")
        return StreamRequest(kind, parts[1], parts[2])
    if kind not in ("exec", "attach"):
        raise BadRequest(f"unknown streaming endpoint {url.path!r}")
    if len(parts) != 4:
        raise BadRequest(f"expected /{kind}/{{namespace}}/{{pod}}/{{container}}")
    req = StreamRequest(
        kind,
        parts[1],
        parts[2],
        parts[3],
        command=tuple(query.get("command", [])),
        stdin=_flag(query, "input"),
        stdout=_flag(query, "output"),
        stderr=_flag(query, "error"),
        tty=_flag(query, "tty"),
    )
    if kind == "exec" and not req.command:
        raise BadRequest("you must specify at least one command for the container")
    if not (req.stdin or req.stdout or req.stderr):
        raise BadRequest("you must specify at least one of stdin, stdout, stderr")
    if req.tty and req.stderr:
        # a terminal merges stderr into stdout; the client never opens a stderr stream
        req = StreamRequest(**{**req.__dict__, "stderr": False})
    return req


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offers that is supported ("" if it offers none)."""
    wanted = [p.strip() for value in offered for p in value.split(",") if p.strip()]
    if not wanted:
        return ""
    return next((p for p in wanted if p in supported), None)


def expected_streams(req: StreamRequest, protocol: str) -> frozenset[str]:
    """The stream types a remote-command client opens for ``req`` under ``protocol``."""
    out = {ERROR}
    if req.stdin:
        out.add(STDIN)
    if req.stdout:
        out.add(STDOUT)
    if req.stderr:
        out.add(STDERR)
    if req.tty and protocol in (V4, V3):
        out.add(RESIZE)
    return frozenset(out)


def header(headers: Headers, name: str) -> str:
    values = headers.get(name.lower()) or [""]
    return values[0]


def exit_status(code: int, protocol: str) -> bytes:
    """What the error stream carries when the command exited with ``code``."""
    if protocol != V4:
        return b"" if code == 0 else f"command terminated with non-zero exit code: {code}".encode()
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    status = {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }
    return json.dumps(status).encode()


def error_status(message: str, protocol: str) -> bytes:
    """What the error stream carries when the command could not run at all."""
    if protocol != V4:
        return message.encode()
    status = {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }
    return json.dumps(status).encode()


@dataclass
class ResizeDecoder:
    """Terminal sizes (columns, rows) out of the resize stream's JSON objects."""

    _buf: str = ""
    _decoder: json.JSONDecoder = field(default_factory=json.JSONDecoder)

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buf += data.decode(errors="replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return sizes
            try:
                obj, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                self._buf = text
                return sizes
            self._buf = text[end:]
            if isinstance(obj, dict):
                width, height = obj.get("Width", 0), obj.get("Height", 0)
                if isinstance(width, int) and isinstance(height, int) and width and height:
                    sizes.append((width, height))


@dataclass(frozen=True)
class ForwardPair:
    request_id: str
    port: int
    error_stream: int
    data_stream: int


@dataclass
class PortForwardPairs:
    """Pairs port-forward error and data streams into :class:`ForwardPair` values."""

    _partial: dict[str, dict[str, int]] = field(default_factory=dict)
    _ports: dict[str, int] = field(default_factory=dict)

    def add(self, stream_id: int, headers: Headers) -> ForwardPair | None:
        """Record one opened stream; the pair once both halves arrived.

        :class:`BadRequest` when the headers are unusable (the stream is refused).
        """
        raw_port = header(headers, "port")
        if not raw_port:
            raise BadRequest('"port" header is required')
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise BadRequest(f"unable to parse {raw_port!r} as a port")
        kind = header(headers, "streamType")
        if kind not in (ERROR, DATA):
            raise BadRequest(f"invalid stream type {kind!r}")
        request_id = header(headers, "requestID")
        if not request_id:
            request_id = str(stream_id if kind == ERROR else stream_id - 2)
        halves = self._partial.setdefault(request_id, {})
        if kind in halves:
            raise BadRequest(f"{kind} stream already assigned for request {request_id}")
        halves[kind] = stream_id
        self._ports[request_id] = int(raw_port)
        if ERROR in halves and DATA in halves:
            del self._partial[request_id]
            return ForwardPair(request_id, self._ports.pop(request_id), halves[ERROR], halves[DATA])
        return None

    def forget(self, stream_id: int) -> str | None:
        """Drop a half-open pair that holds ``stream_id``; its request id, if any."""
        for request_id, halves in list(self._partial.items()):
            if stream_id in halves.values():
                del self._partial[request_id]
                self._ports.pop(request_id, None)
                return request_id
        return None
