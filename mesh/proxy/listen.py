"""Listener address families: every wildcard or loopback listener is bound on IPv4 and IPv6.

proxy-init redirects IPv6 the same way as IPv4 (``mesh.proxy.init``): inbound
IPv6 to ``[::]:4143`` (the address it arrived on), the app's outbound IPv6 to
``[::1]:4140``. A proxy listening on IPv4 only would drop that traffic, so a
listener configured on ``0.0.0.0`` is also bound on ``::``, one on
``127.0.0.1`` also on ``::1`` (and the other way round), on the same port. Rules:

- each address is its own socket (the IPv6 one ``IPV6_V6ONLY``, as asyncio
  binds them), the IPv4 one first, so an ephemeral port (0) is shared;
- where the kernel cannot bind the twin (IPv6 disabled: ``EAFNOSUPPORT``, or no
  ``::1``: ``EADDRNOTAVAIL``), the listener serves its configured family alone
  and says so once: nothing can reach it over the missing family, and
  proxy-init has already refused to start a pod whose IPv6 it cannot redirect;
- any other failure (the twin's port in use, permissions) fails the start:
  never a proxy that silently serves one family only; except that with an
  ephemeral port (0) a twin port already taken makes it try another port
  (``EPHEMERAL_ATTEMPTS`` in all);
- a specific address (a pod IP) is bound as it is.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Sequence
from socket import socket

__all__ = ["Listener", "dual_stack_twin", "listen"]

log = logging.getLogger(__name__)

_TWINS = {"0.0.0.0": "::", "::": "0.0.0.0", "127.0.0.1": "::1", "::1": "127.0.0.1"}
_FAMILY_MISSING = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
EPHEMERAL_ATTEMPTS = 5
"""Ports tried for a listener on port 0 whose twin finds the first one taken."""

Accepted = Callable[[], asyncio.Protocol]
"""Makes the protocol of each accepted connection."""


def dual_stack_twin(host: str) -> str | None:
    """The other family's address for a wildcard or loopback ``host``; ``None`` for others."""
    return _TWINS.get(host.strip("[]"))


class Listener:
    """One logical listener: a server per address family, opened and closed together."""

    def __init__(self, servers: Sequence[asyncio.Server]) -> None:
        self.servers = tuple(servers)

    @property
    def sockets(self) -> tuple[socket, ...]:
        """Every bound socket (the configured family's first)."""
        return tuple(s for server in self.servers for s in server.sockets)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The bound addresses."""
        return tuple(str(s.getsockname()[0]) for s in self.sockets)

    def close(self) -> None:
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self.servers:
            await server.wait_closed()


async def listen(accepted: Accepted, host: str, port: int) -> Listener:
    """Bind ``host:port`` and its dual-stack twin (see the module docstring)."""
    attempts = EPHEMERAL_ATTEMPTS if port == 0 else 1
    for attempt in range(1, attempts + 1):
        try:
            return await _listen(accepted, host.strip("[]"), port)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or attempt == attempts:
                raise
    raise AssertionError("unreachable")  # the last attempt returned or raised


async def create_server(accepted: Accepted, host: str, port: int) -> asyncio.Server:
    """One listening socket on ``host:port`` (the seam tests replace)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(accepted, host, port, reuse_address=True)


async def _listen(accepted: Accepted, host: str, port: int) -> Listener:
    first = await create_server(accepted, host, port)
    twin = dual_stack_twin(host)
    if twin is None:
        return Listener([first])
    bound = int(first.sockets[0].getsockname()[1])
    try:
        second = await create_server(accepted, twin, bound)
    except OSError as e:
        if e.errno in _FAMILY_MISSING:
            log.info("listening on %s:%d only: %s cannot be bound here (%s)", host, bound, twin, e)
            return Listener([first])
        first.close()
        await first.wait_closed()
        raise OSError(e.errno, f"binding [{twin}]:{bound} beside {host}: {e.strerror}") from e
    except BaseException:
        first.close()
        await first.wait_closed()
        raise
    return Listener([first, second])
