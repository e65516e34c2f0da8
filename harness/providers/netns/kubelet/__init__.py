"""The kubelet stand-in of the netns provider: pods as processes in network namespaces.

One process per node (``python -m harness.providers.netns.kubelet --help``) registers
the Node, renews its Lease and runs every pod bound to it: a network namespace wired
point-to-point to the node namespace, volumes bind-mounted in a private mount
namespace, containers started through :mod:`.launch` with their image mapped to one
of this project's entry points, probes, restarts with back-off, status, logs, and
teardown on deletion.

Layout: pure decisions in ``images``, ``envvars``, ``volumeplan``, ``launchplan``,
``backoff``, ``probing``, ``podstatus``, ``podfiles``, ``ipam``, ``naming``; IO in
``sandbox``, ``containers``, ``volumes``, ``probes``, ``worker``, ``node``,
``logserver``, ``agent``; the API behind ``api.KubeApi``.

This package must stay light to import: :mod:`.launch` runs once per container start.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run until SIGTERM."""
    import asyncio
    import logging

    from harness.providers.netns.kubelet.agent import amain
    from harness.providers.netns.kubelet.config import parse_args

    cfg = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [{cfg.node_name}] %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    asyncio.run(amain(cfg))
