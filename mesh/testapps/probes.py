"""One-shot network probes of the load client: a DNS lookup and a TCP first line.

Both always answer; a failure is part of the answer (``error``), never an exception.
Lookups use the system resolver (``getaddrinfo``, IPv4), so they see the pod's
``resolv.conf`` and ``hosts`` exactly as the application would. Names under the
reserved ``.invalid`` TLD are answered NXDOMAIN without a lookup (RFC 6761 §6.4), so
probing a name that cannot exist never sends a query anywhere.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TypedDict

from mesh.testapps.loadgen import describe_error
from mesh.testapps.settings import SETTINGS, Settings

#: resolves a host name to IPv4 addresses, raising ``socket.gaierror`` when it cannot.
Resolver = Callable[[str], Awaitable[list[str]]]

_MAX_NAME_CHARS = 253


class DnsAnswer(TypedDict):
    name: str
    addresses: list[str]


class DnsFailure(TypedDict):
    name: str
    error: str


class TcpAnswer(TypedDict):
    ok: bool
    line: str | None
    error: str | None


async def system_resolve(name: str) -> list[str]:
    """IPv4 addresses of ``name`` from the system resolver, in its order, without repeats."""
    infos = await asyncio.to_thread(
        socket.getaddrinfo, name, None, family=socket.AF_INET, type=socket.SOCK_STREAM
    )
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


def is_reserved_invalid(name: str) -> bool:
    """Whether ``name`` lies under the ``.invalid`` TLD, which never resolves."""
    labels = name.rstrip(".").lower().split(".")
    return labels[-1] == "invalid"


def check_name(name: str | None) -> str:
    """The name to look up, or ValueError saying why it cannot be one."""
    if not name:
        raise ValueError("name is required")
    if len(name) > _MAX_NAME_CHARS:
        raise ValueError(f"name must be at most {_MAX_NAME_CHARS} characters")
    return name


def _gai_kind(exc: socket.gaierror) -> str:
    if exc.errno == socket.EAI_NONAME:
        return "NXDOMAIN"
    if exc.errno == getattr(socket, "EAI_NODATA", None):
        return "NoData"
    if exc.errno == socket.EAI_AGAIN:
        return "TempFailure"
    return "ResolveError"


async def lookup(
    name: str, resolver: Resolver = system_resolve, settings: Settings = SETTINGS
) -> DnsAnswer | DnsFailure:
    """Resolve ``name``; a name that does not resolve is an answer with ``error``."""
    if is_reserved_invalid(name):
        reason = ".invalid is reserved (RFC 6761), not looked up"
        return {"name": name, "error": describe_error("NXDOMAIN", reason, settings)}
    try:
        async with asyncio.timeout(settings.dns_lookup):
            addresses = await resolver(name)
    except socket.gaierror as exc:
        error = describe_error(_gai_kind(exc), exc.strerror or str(exc), settings)
    except TimeoutError:
        error = describe_error("Timeout", f"no answer within {settings.dns_lookup:g} s", settings)
    except OSError as exc:
        error = describe_error(type(exc).__name__, str(exc), settings)
    else:
        if not addresses:
            return {"name": name, "error": describe_error("NoData", "no IPv4 address", settings)}
        return {"name": name, "addresses": addresses}
    return {"name": name, "error": error}


def parse_addr(addr: str | None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` split in two, or ValueError saying what is wrong."""
    if not addr:
        raise ValueError("addr is required, as host:port")
    host, sep, port_text = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"addr must be host:port, not {addr!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be within 1-65535, not {port}")
    return host, port


async def first_line(
    host: str, port: int, within: float, settings: Settings = SETTINGS, send: bytes = b""
) -> TcpAnswer:
    """Connect to ``host:port``, write ``send`` (if any), read one line, all within
    ``within`` seconds."""
    writer: asyncio.StreamWriter | None = None
    line: str | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(
                host, port, limit=settings.max_line_bytes
            )
            if send:
                writer.write(send)
                await writer.drain()
            raw = await reader.readuntil(b"\n")
        line = _decode(raw)
    except asyncio.IncompleteReadError as exc:
        line = _decode(exc.partial) or None
        error = describe_error("EOF", "connection closed before a full line", settings)
    except asyncio.LimitOverrunError:
        reason = f"first line longer than {settings.max_line_bytes} bytes"
        error = describe_error("TooLong", reason, settings)
    except TimeoutError:
        error = describe_error("Timeout", f"no line within {within:g} s", settings)
    except OSError as exc:
        kind = "ConnectError" if writer is None else type(exc).__name__
        error = describe_error(kind, str(exc), settings)
    finally:
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
    return {"ok": error is None, "line": line, "error": error}


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")
