"""``isthmus component failover``: the failover controller (CONF-49).

Rules: flags are the contract with the manifests ``isthmus install`` renders
(``--selector``, ``--admin-addr``); the process runs until SIGTERM, and nothing the
cluster says - an unusable split, a failed patch, an unreachable API server - ends it
(it reports and retries).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import httpx2
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from mesh.admin_port import (
    AdminServer,
    configure_logging,
    parse_host_port,
    serve_until_stopped,
)
from mesh.failover.admin import FailoverMetrics
from mesh.failover.controller import FailoverController, FailoverSettings
from mesh.failover.kube import COMPONENT, KubeFailover
from mesh.failover.model import DEFAULT_SELECTOR, parse_selector
from mesh.install.components import FAILOVER_ADMIN_PORT
from mesh.k8s.watching import WatchSettings

__all__ = ["main"]

_log = logging.getLogger("mesh.failover")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isthmus component failover",
        description="Move managed TrafficSplits' weight to ready backends when the primary fails.",
    )
    parser.add_argument(
        "--selector",
        default=DEFAULT_SELECTOR,
        help=f"labels (key=value,...) of the TrafficSplits to manage [default: {DEFAULT_SELECTOR}]",
    )
    parser.add_argument(
        "--admin-addr",
        default=f"0.0.0.0:{FAILOVER_ADMIN_PORT}",
        help="host:port of /metrics, /ready and /live",
    )
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    parser.add_argument("--log-level", default="INFO")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    try:
        selector = parse_selector(args.selector)
    except ValueError as e:
        raise SystemExit(f"failover: --selector: {e}") from None
    host, port = parse_host_port(args.admin_addr, "failover: --admin-addr")
    settings = FailoverSettings()
    kube_config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else None
    client = AsyncClient(
        config=kube_config, field_manager=COMPONENT, timeout=httpx2.Timeout(settings.api_timeout)
    )
    metrics = FailoverMetrics()
    controller = FailoverController(
        KubeFailover(client, selector, WatchSettings()), metrics, settings
    )
    admin = AdminServer(metrics.exposition, lambda: controller.ready)
    bound = await admin.start(host, port)
    _log.info("failover controller for TrafficSplits %s; admin on %s:%d", selector, host, bound)
    await serve_until_stopped("failover", controller.run(), admin, client.close)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the failover controller until SIGTERM."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
