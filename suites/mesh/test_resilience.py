"""Mesh: proxies keep serving what they already resolved while discovery restarts.

Disruptive (it deletes the shared destination pod), so it runs after the other mesh tests.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from fixtures.mesh import Mesh
from fixtures.workloads import Workloads
from harness.kube import wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import (
    assert_meshed,
    converge,
    deploy_server,
    pod_name,
    service_url,
    statuses,
)

RATE = 20.0
#: long enough to cover deleting the pod and its replacement becoming ready.
SECONDS = 40
COUNT = int(RATE * SECONDS)


def _outbound(mesh: Mesh, cluster: str, namespace: str, pod: str) -> float:
    return mesh.metrics(cluster, namespace, pod).sum("request_total", direction="outbound")


@pytest.mark.mesh_disruptive(rank=1)
@pytest.mark.conformance(
    short_name="mesh-destination-restart",
    description=f"While the destination (discovery and policy) pod is deleted and replaced, "
    f"a meshed client already talking to a meshed Service keeps getting answers: "
    f"{COUNT} requests at {RATE:g}/s, none failed",
    features=["injection", "control-plane-resilience"],
    profile="mesh",
    conf=[],
)
def test_requests_keep_flowing_while_destination_restarts(
    mesh_alone: Mesh, meshed_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    """(g) delete the destination pod mid-run: no request between resolved peers fails."""
    mesh = mesh_alone
    c, ns = mesh.primary, meshed_namespace
    k = mesh.kube[c]
    dest_ns, dest_name = mesh.adapter.components["destination"]
    deploy_server(mesh, ns, c, replicas=2)
    client = workloads.client(c)
    assert_meshed(k, ns, client.pod)
    url = service_url(mesh, c, ns, "server")
    converge(client, url)
    client_id = mesh.identity(c, ns, "default")
    warm = client.run(url, 20, label="resolved before the restart")
    ids = {(r["responder"] or {}).get("client_id") for r in warm["records"]}
    assert ids == {client_id}, (
        f"expected the peers resolved and talking mTLS before the restart (the server seeing "
        f"client identity {client_id}); it saw {ids}, statuses {statuses(warm)}"
    )

    spec = k.client.get(Deployment, dest_name, namespace=dest_ns).spec
    selector = dict(spec.selector.matchLabels or {}) if spec else {}
    before = {pod_name(p) for p in k.pods(dest_ns, selector)}
    assert before, f"[{c}] expected pods of {dest_ns}/{dest_name}: {k.describe_pods(dest_ns)}"

    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        running = pool.submit(client.run, url, COUNT, rate=RATE, label="during restart")
        wait_for(
            "the load run to be under way (the client's proxy counting its requests)",
            lambda: _outbound(mesh, c, ns, client.pod) or None,
            TIMEOUTS.convergence,
        )
        deleted_at = time.monotonic() - started
        with evidence.step(f"delete {dest_ns}/{dest_name} pods {sorted(before)}"):
            for name in before:
                k.client.delete(Pod, name, namespace=dest_ns)

        def replaced() -> bool | None:
            pods = k.pods(dest_ns, selector)
            fresh = [p for p in pods if pod_name(p) not in before]
            ready = [
                p
                for p in fresh
                if p.status
                and any(x.type == "Ready" and x.status == "True" for x in p.status.conditions or [])
            ]
            return True if ready else None

        with evidence.step("wait for the replacement destination pod"):
            wait_for(
                f"[{c}] a new Ready pod of {dest_ns}/{dest_name}",
                replaced,
                TIMEOUTS.deployment_ready,
                lambda: k.describe_pods(dest_ns),
            )
        ready_at = time.monotonic() - started
        result = running.result()
    evidence.record(
        "outage",
        {
            "deleted_at_s": round(deleted_at, 2),
            "replacement_ready_at_s": round(ready_at, 2),
            "requests_in_window": [int(deleted_at * RATE), int(ready_at * RATE)],
        },
    )
    seen = statuses(result)
    failed = [
        (r["i"], r["status"], r.get("error"))
        for r in result["records"]
        if r["status"] != 200 or r.get("error")
    ]
    assert not failed, (
        f"expected all {COUNT} requests from {client.pod} to {url} to succeed while "
        f"{dest_ns}/{dest_name} was deleted at {deleted_at:.1f}s and replaced by "
        f"{ready_at:.1f}s (requests {int(deleted_at * RATE)}-{int(ready_at * RATE)}); "
        f"saw {seen}; first failures (index, status, error): {failed[:10]}"
    )
    plain = sorted(
        {str((r["responder"] or {}).get("client_id")) for r in result["records"]} - {client_id}
    )
    assert not plain, (
        f"expected every request during the restart to stay mTLS from {client_id}; the server "
        f"also saw client identities {plain}"
    )
    assert ready_at < SECONDS, (
        f"the replacement destination pod took {ready_at:.1f}s, longer than the {SECONDS}s "
        f"load run, so the run did not cover the whole outage"
    )
