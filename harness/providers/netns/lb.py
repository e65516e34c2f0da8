"""A tiny LoadBalancer controller: Services of type LoadBalancer get the node address.

Runs on the host, one per cluster: ``python -m harness.providers.netns.lb --kubeconfig K --ip IP``.
kube-proxy then forwards traffic for that address and port to the Service's endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from lightkube import AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Service

log = logging.getLogger("isthmus.lb")


def wanted_status(svc: Service, ip: str) -> dict[str, object] | None:
    """The status patch a LoadBalancer Service needs, or None when it has the address."""
    if svc.spec is None or svc.spec.type != "LoadBalancer":
        return None
    lb = svc.status.loadBalancer if svc.status else None
    current = [i.ip for i in (lb.ingress or [])] if lb else []
    if current == [ip]:
        return None
    return {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}


async def run(kubeconfig: str, ip: str) -> None:
    client = AsyncClient(KubeConfig.from_file(kubeconfig), field_manager="isthmus-lb")
    while True:
        try:
            async for _, svc in client.watch(Service, namespace="*"):
                patch = wanted_status(svc, ip)
                if patch and svc.metadata and svc.metadata.name:
                    await client.patch(
                        Service.Status, svc.metadata.name, patch, namespace=svc.metadata.namespace
                    )
                    log.info("%s/%s -> %s", svc.metadata.namespace, svc.metadata.name, ip)
        except Exception:  # a watch may end or the API may blip; start over
            log.exception("watch failed; retrying")
            await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--ip", required=True, help="the address LoadBalancer Services get")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(run(args.kubeconfig, args.ip))


if __name__ == "__main__":
    main()
