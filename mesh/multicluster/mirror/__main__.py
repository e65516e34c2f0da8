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

from mesh.admin_port import AdminServer
from mesh.multicluster import labels
from mesh.multicluster.mirror.admin import MirrorMetrics
from mesh.multicluster.mirror.controller import MirrorController, MirrorSettings
from mesh.multicluster.mirror.kube import FIELD_MANAGER, KubeLocal, KubeRemote
from mesh.serving import stop_signal

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


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SystemExit(f"service-mirror: --metrics-addr {text!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


async def _serve(args: argparse.Namespace) -> None:
    settings = MirrorSettings()
    host, port = _host_port(args.metrics_addr)
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
    stopping = stop_signal()
    running = asyncio.create_task(controller.run())
    told = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({running, told}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        running.cancel()
        told.cancel()
        await asyncio.gather(running, told, return_exceptions=True)
        await admin.stop()
        await client.close()
    if running.done() and not running.cancelled() and running.exception() is not None:
        raise SystemExit(f"service-mirror: {running.exception()}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the mirror controller for one Link until SIGTERM."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
