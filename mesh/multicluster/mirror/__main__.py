"""``isthmus component service-mirror``: one Link's mirror controller.

Rules: flags are the contract with the manifests ``multicluster link`` renders
(``--link-name``, ``--namespace``, ``--metrics-addr``); the process runs until SIGTERM,
and nothing the clusters say - a bad Link, bad credentials, an unreachable target -
ends it (it reports and retries).
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
from mesh.multicluster import labels
from mesh.multicluster.mirror.admin import MirrorMetrics
from mesh.multicluster.mirror.controller import MirrorController, MirrorSettings
from mesh.multicluster.mirror.kube import FIELD_MANAGER, KubeLocal, KubeRemote

__all__ = ["main"]

_log = logging.getLogger("mesh.multicluster.mirror")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isthmus component service-mirror",
        description="Mirror the Services a linked cluster exports.",
    )
    parser.add_argument("--link-name", required=True, help="the Link (and target cluster) name")
    parser.add_argument("--namespace", default=labels.NAMESPACE, help="where the Link lives")
    parser.add_argument(
        "--metrics-addr",
        default=f"0.0.0.0:{labels.MIRROR_METRICS_PORT}",
        help="host:port of /metrics, /ready and /live",
    )
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    parser.add_argument("--log-level", default="INFO")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    settings = MirrorSettings()
    host, port = parse_host_port(args.metrics_addr, "service-mirror: --metrics-addr")
    kube_config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else None
    client = AsyncClient(
        config=kube_config,
        field_manager=FIELD_MANAGER,
        timeout=httpx2.Timeout(settings.local_timeout),
    )
    metrics = MirrorMetrics(args.link_name)
    controller = MirrorController(
        args.link_name,
        KubeLocal(client, args.namespace, settings.watch),
        KubeRemote(settings.watch, settings.remote_timeout),
        metrics,
        settings=settings,
    )
    admin = AdminServer(metrics.exposition, lambda: controller.ready)
    bound = await admin.start(host, port)
    _log.info("service mirror for link %s; admin on %s:%d", args.link_name, host, bound)
    await serve_until_stopped("service-mirror", controller.run(), admin, client.close)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the mirror controller for one Link until SIGTERM."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
