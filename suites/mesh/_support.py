"""Helpers of the mesh suite: meshed workloads, load runs, convergence and statistics."""

from __future__ import annotations

import math
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod

from fixtures.mesh import Mesh
from fixtures.workloads import CONTROL_PORT, MANIFESTS, LoadClient
from harness.kube import Kube, wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS

#: the proxy container injected into meshed pods (Linkerd's name).
PROXY_CONTAINER = "linkerd-proxy"
#: consecutive successes that show a route has converged.
CONVERGED_AFTER = 5


def deploy_server(
    mesh: Mesh, namespace: str, cluster: str, name: str = "server", replicas: int = 1
) -> list[Pod]:
    """The test server under its own service account ``name``; its pods once all are Ready."""
    k = mesh.kube[cluster]
    k.apply(
        (MANIFESTS / "mesh-server.yaml").read_text(),
        namespace=namespace,
        name=name,
        replicas=str(replicas),
        cluster=cluster,
    )
    k.wait_deployment_ready(name, namespace)
    return k.pods(namespace, {"app": name})


def unmeshed_client(
    kube: Kube, namespace: str, evidence: Evidence, name: str = "unmeshed"
) -> LoadClient:
    """A load client annotated out of the mesh, in a namespace marked for injection."""
    evidence.record("step", f"start unmeshed load client {name} in {kube.name}")
    kube.apply(
        (MANIFESTS / "mesh-client-unmeshed.yaml").read_text(),
        namespace=namespace,
        name=name,
        cluster=kube.name,
    )
    kube.wait_pod_ready(name, namespace)
    return LoadClient(kube, namespace, name, evidence)


def pod_name(pod: Pod) -> str:
    assert pod.metadata is not None
    assert pod.metadata.name is not None
    return pod.metadata.name


def containers(pod: Pod) -> list[str]:
    return [c.name for c in (pod.spec.containers if pod.spec else [])]


def assert_meshed(kube: Kube, namespace: str, pod_name: str, meshed: bool = True) -> None:
    pod = kube.client.get(Pod, pod_name, namespace=namespace)
    names = containers(pod)
    assert (PROXY_CONTAINER in names) == meshed, (
        f"[{kube.name}] expected pod {namespace}/{pod_name} "
        f"{'with' if meshed else 'without'} container {PROXY_CONTAINER}; it has {names}"
    )


def service_url(mesh: Mesh, cluster: str, namespace: str, name: str, port: int = 8080) -> str:
    return f"http://{name}.{namespace}.svc.{mesh.clusters[cluster].domain}:{port}/"


def converge(client: LoadClient, url: str, successes: int = CONVERGED_AFTER) -> None:
    """Wait until ``successes`` requests in a row succeed (TIMEOUTS.convergence)."""
    last: list[str] = []

    def attempt() -> bool | None:
        body = {"url": url, "count": successes, "concurrency": 1, "timeout": 2}
        r = client.kube.pod_proxy(client.namespace, client.pod, CONTROL_PORT, "/run", "POST", body)
        if r.status_code != 200:
            last[:] = [f"/run answered {r.status_code}: {r.text[:200]}"]
            return None
        records = r.json()["records"]
        last[:] = [f"{x['status']}/{x.get('error')}" for x in records]
        return True if all(x["status"] == 200 for x in records) else None

    wait_for(
        f"[{client.kube.name}] {successes} successes in a row from {client.pod} to {url}",
        attempt,
        TIMEOUTS.convergence,
        lambda: ", ".join(last) or "no answer",
    )


def statuses(result: dict[str, Any]) -> dict[str, int]:
    """Status histogram of a run (``none`` for requests that got no status)."""
    seen: dict[str, int] = {}
    for r in result["records"]:
        key = str(r["status"]) if r["status"] is not None else f"none ({r.get('error')})"
        seen[key] = seen.get(key, 0) + 1
    return seen


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), exactly."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def require_pod_network(mesh: Mesh, cluster: str) -> None:
    """Skip unless this host reaches the cluster's pod IPs (the netns provider)."""
    provider = mesh.clusters[cluster].extra.get("provider")
    if provider != "netns":
        pytest.skip(f"the host reaches pod IPs only on the netns provider, not {provider}")
