"""Substrate: workloads run, are discoverable, resolve by DNS and reach each other."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube.resources.core_v1 import Pod, Service

from fixtures.workloads import Workloads
from harness.kube import Kube, wait_for
from harness.settings import TIMEOUTS


def _pod_ips(k: Kube, namespace: str, app: str) -> set[str]:
    return {p.status.podIP for p in k.pods(namespace, {"app": app}) if p.status and p.status.podIP}


def _responders(result: dict) -> set[str]:
    return {r["responder"]["pod"] for r in result["records"] if r.get("responder")}


@pytest.mark.requires(clusters=2)
def test_deployment_ready_and_endpointslice_lists_pods(
    kube: dict[str, Kube], workloads: Workloads, namespace: str
) -> None:
    """(b) a 2-replica Deployment in target becomes Ready; its EndpointSlice lists both pods."""
    workloads.server("target", replicas=2)
    k = kube["target"]
    ips = _pod_ips(k, namespace, "server")
    assert len(ips) == 2, f"expected 2 pod IPs, saw {ips} ({k.describe_pods(namespace)})"
    listed = wait_for(
        f"EndpointSlice of {namespace}/server listing {sorted(ips)}",
        lambda: a if (a := k.endpoint_addresses("server", namespace)) == ips else None,
        TIMEOUTS.endpoints_ready,
        lambda: str(sorted(k.endpoint_addresses("server", namespace))),
    )
    assert listed == ips


@pytest.mark.requires(clusters=2)
def test_service_name_resolves_and_cluster_ip_answers_in_target(
    kube: dict[str, Kube], workloads: Workloads, namespace: str
) -> None:
    """(c) from a pod in target, <svc>.<ns>.svc.target resolves and its ClusterIP answers."""
    workloads.server("target", replicas=2)
    client = workloads.client("target")
    k = kube["target"]
    svc = k.client.get(Service, "server", namespace=namespace)
    fqdn = f"server.{namespace}.svc.{k.cluster.domain}"
    answer = client.resolve(fqdn)
    assert answer.get("addresses") == [svc.spec.clusterIP], (
        f"expected {fqdn} -> [{svc.spec.clusterIP}], resolver answered {answer}"
    )
    result = client.run(f"http://{fqdn}:8080/", count=20)
    statuses = [r["status"] for r in result["records"]]
    assert statuses == [200] * 20, f"expected 20 x 200 via the ClusterIP, saw {result['summary']}"
    pods = {p.metadata.name for p in k.pods(namespace, {"app": "server"})}
    assert _responders(result) <= pods, f"responders {_responders(result)} not in {pods}"


@pytest.mark.requires(clusters=2, network="flat")
def test_source_pod_reaches_target_pod_ips_directly(
    kube: dict[str, Kube], workloads: Workloads, namespace: str
) -> None:
    """(d) from source, target pod IPs answer directly; <svc>.<ns>.svc.source doesn't map there."""
    workloads.server("target", replicas=2)
    client = workloads.client("source")
    target = kube["target"]
    client_ip = kube["source"].client.get(Pod, client.pod, namespace=namespace).status.podIP
    for ip in sorted(_pod_ips(target, namespace, "server")):
        result = client.run(f"http://{ip}:8080/", count=3)
        seen = [(r["status"], r.get("error")) for r in result["records"]]
        assert all(s == 200 for s, _ in seen), (
            f"expected target pod {ip} to answer a source pod directly (flat network); saw {seen}"
        )
        assert {r["responder"]["cluster"] for r in result["records"]} == {"target"}
        remotes = {r["responder"]["remote"] for r in result["records"]}
        assert remotes == {client_ip}, (
            f"expected target pods to see the source pod's own address {client_ip} (no NAT on "
            f"a flat network); they saw {remotes}"
        )
    local = f"server.{namespace}.svc.{kube['source'].cluster.domain}"
    answer = client.resolve(local)
    target_ips = _pod_ips(target, namespace, "server")
    assert not set(answer.get("addresses") or []) & target_ips, (
        f"expected {local} not to resolve to target pods {target_ips}; resolver said {answer}"
    )


@pytest.mark.requires(clusters=2, network="hierarchical")
def test_hierarchical_pod_ips_unreachable_but_load_balancer_answers(
    kube: dict[str, Kube], workloads: Workloads, namespace: str
) -> None:
    """(e) hierarchical: target pod IPs do not answer from source; the LoadBalancer does."""
    workloads.server("target", replicas=1, service_type="LoadBalancer")
    client = workloads.client("source")
    target = kube["target"]
    ip = next(iter(_pod_ips(target, namespace, "server")))
    result = client.run(f"http://{ip}:8080/", count=2, timeout=2)
    assert all(r["status"] is None for r in result["records"]), (
        f"expected target pod {ip} unreachable from source (hierarchical network); "
        f"saw {[(r['status'], r.get('error')) for r in result['records']]}"
    )

    def ingress() -> str | None:
        svc = target.client.get(Service, "server", namespace=namespace)
        lb = svc.status.loadBalancer if svc.status else None
        return lb.ingress[0].ip if lb and lb.ingress else None

    lb_ip = wait_for(
        f"LoadBalancer address of {namespace}/server", ingress, TIMEOUTS.endpoints_ready
    )
    result = client.run(f"http://{lb_ip}:8080/", count=5)
    statuses = [r["status"] for r in result["records"]]
    assert statuses == [200] * 5, (
        f"expected the LoadBalancer {lb_ip}:8080 to answer from source; saw {result['summary']}"
    )
    assert {r["responder"]["cluster"] for r in result["records"]} == {"target"}


def test_pod_token_passes_token_review(
    kube: dict[str, Kube], workloads: Workloads, namespace: str, clusters: dict
) -> None:
    """(f) a pod's projected service-account token passes a TokenReview."""
    name = next(iter(kube))
    client = workloads.client(name)
    token = client._call("/token")["token"]
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    r = kube[name].http.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)
    assert r.status_code == 201, f"TokenReview create answered {r.status_code}: {r.text}"
    status = r.json()["status"]
    expected = f"system:serviceaccount:{namespace}:default"
    assert status.get("authenticated") is True, f"expected the token authenticated: {status}"
    assert status["user"]["username"] == expected, (
        f"expected username {expected}, TokenReview says {status['user']}"
    )
    extra = status["user"].get("extra", {})
    assert extra.get("authentication.kubernetes.io/pod-name") == [client.pod], (
        f"expected the token bound to pod {client.pod}; extra: {extra}"
    )


def test_deleting_pod_stops_processes_and_frees_address(
    kube: dict[str, Kube], workloads: Workloads, namespace: str
) -> None:
    """(g) deleting a pod stops its processes and frees its address."""
    name = next(iter(kube))
    k = kube[name]
    pod = workloads.server_pod(name, name="victim")
    probe = workloads.client(name, name="probe")
    ip, uid, pod_name = pod.status.podIP, pod.metadata.uid, pod.metadata.name
    before = probe._call(f"/tcp?addr={ip}:9000")
    assert before["ok"], f"expected {ip}:9000 to say hello before deletion: {before}"
    k.client.delete(Pod, pod_name, namespace=namespace)

    def gone() -> bool | None:
        return True if pod_name not in {p.metadata.name for p in k.pods(namespace)} else None

    wait_for(
        f"pod {namespace}/{pod_name} deleted",
        gone,
        TIMEOUTS.pod_deleted,
        lambda: k.describe_pods(namespace),
    )
    after = probe._call(f"/tcp?addr={ip}:9000&timeout=2")
    assert not after["ok"], f"expected {ip}:9000 to be gone after deletion, saw {after}"
    if k.cluster.extra.get("provider") == "netns":
        left = _processes_mentioning(uid)
        assert not left, f"expected no process of pod uid {uid} after deletion: {left}"
        spaces = [n for n in Path("/var/run/netns").iterdir() if n.name.endswith(uid[:12])]
        assert not spaces, f"expected the pod's network namespace gone: {spaces}"


def _processes_mentioning(uid: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if uid.encode() in raw or uid[:12].encode() in raw:
            found.append(f"{proc.name}: {raw[:120]!r}")
    return found
