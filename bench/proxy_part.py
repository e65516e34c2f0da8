"""``python -m bench.proxy_part``: one Isthmus proxy of the bench's pair, as its own process.

    python -m bench.proxy_part {client|server} TARGET_PORT --certs DIR [--profile FILE]

``client`` is the outbound proxy (workload ``web``): every connection goes to
the service ``SERVICE``, which static discovery resolves to the inbound proxy
on ``TARGET_PORT`` with identity ``bb``. ``server`` is the inbound proxy
(workload ``bb``) in front of the application on ``TARGET_PORT``. Both use the
certificates ``bench.pairs.write_certs`` wrote to DIR, ephemeral loopback
ports, and the proxy's own event loop; once serving, a part prints
``ready PORT`` (the port the load or the other proxy connects to) and runs
until SIGTERM.

Rules: this module is what the bench measures (CPU seconds and RSS of the
process), so it imports only what a proxy process needs: no load generator,
no statistics, no harness; the profiler only with ``--profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from bench.pairs import identity
from mesh.proxy import eventloop
from mesh.proxy.config import ProxyConfig
from mesh.proxy.discovery import Add, Address, Endpoint, NotFound, Update
from mesh.proxy.origdst import fixed_destination
from mesh.proxy.policy import StaticPolicy
from mesh.proxy.server import Proxy
from mesh.proxy.tls import TlsCredentials, TlsStore

__all__ = ["ROLES", "SERVICE", "main", "serve"]

SERVICE = ("10.43.0.10", 8080)
"""The service address the outbound proxy pretends it was sent to."""
ROLES = ("client", "server")


class _StaticDiscovery:
    """The inbound proxy as the only endpoint (client), or no endpoints (server)."""

    def __init__(self, role: str, target_port: int) -> None:
        self._role = role
        self._target_port = target_port

    async def resolve(self, target: str) -> AsyncIterator[Update]:
        update: Update = NotFound()
        if self._role == "client":
            peer = identity("bb")
            endpoint = Endpoint(Address("127.0.0.1", self._target_port), identity=peer)
            update = Add((endpoint,))
        yield update
        await asyncio.Event().wait()


def _tls(role: str, certs: Path) -> TlsStore:
    name = "web" if role == "client" else "bb"
    return TlsStore(
        TlsCredentials(
            identity(name),
            (certs / f"{name}.crt").read_bytes(),
            (certs / f"{name}.key").read_bytes(),
            (certs / "anchors.pem").read_bytes(),
        )
    )


async def serve(role: str, certs: Path, target_port: int) -> None:
    """Run one part until SIGTERM; prints ``ready PORT`` once serving."""
    config = ProxyConfig(
        inbound_host="127.0.0.1",
        inbound_port=0,
        outbound_host="127.0.0.1",
        outbound_port=0,
        admin_host="127.0.0.1",
        admin_port=0,
    )
    proxy = Proxy(
        config,
        discovery=_StaticDiscovery(role, target_port),
        policy=StaticPolicy(),
        tls=_tls(role, certs),
        outbound_destination=fixed_destination(Address(*SERVICE)),
        inbound_destination=fixed_destination(Address("127.0.0.1", target_port)),
    )
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    async with proxy:
        port = proxy.outbound_port if role == "client" else proxy.inbound_port
        print(f"ready {port}", flush=True)
        await stopping.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_part")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("target", type=int)
    parser.add_argument("--certs", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write cProfile stats here on exit")
    args = parser.parse_args(argv)
    if args.profile is None:
        eventloop.run(serve(args.role, args.certs, args.target))
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        eventloop.run(serve(args.role, args.certs, args.target))
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
