"""Pod-to-pod multicluster (remote discovery): on a flat network a Service exported with
``mirror.linkerd.io/exported=remote-discovery`` is reached directly, pod to pod.

Needs a flat network (the source's pods must reach the target's): on a hierarchical
topology every test here is skipped with that reason. One target server, its
remote-discovery export and one meshed source client are shared by the module; each
test measures its own deltas of the proxies' counters. The claims rest on the three
proxies' own metrics (client, server and the target's gateway) plus the server's answer
naming its cluster, pod and the client identity it saw.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from lightkube.resources.core_v1 import Secret, Service

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import LoadClient, Workloads
from harness.adapters.promtext import Metrics
from harness.kube import Kube
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import converge, deploy_server, pod_name, statuses
from suites.multicluster._support import (
    CLUSTER_NAME,
    LINK_LABEL,
    MIRRORED,
    addresses,
    delete_service,
    endpoints,
    eventually,
    gateway_pod,
    mirror,
    private_link,
    private_name,
)

SOURCE, TARGET = "source", "target"
SERVER = "server"
MIRROR = f"{SERVER}-{TARGET}"
REMOTE_DISCOVERY = "multicluster.linkerd.io/remote-discovery"
REMOTE_SERVICE = "multicluster.linkerd.io/remote-service"
GATEWAY_SA = "linkerd-gateway"
REQUESTS = 60
#: requests the target gateway may count for the server during a pod-to-pod run (its
#: probes and stragglers of earlier gateway-mode traffic), as a share of the run's.
GATEWAY_SHARE = 0.05
FEATURES = ["multicluster", "remote-discovery", "injection", "mtls", "proxy-metrics"]

pytestmark = pytest.mark.requires(clusters=2, network="flat")


@dataclass
class PodToPod:
    """The module's shared deployment: a target server exported in remote-discovery
    mode, its mirror in the source, and a meshed client in the source."""

    linked: Linked
    namespace: str
    client: LoadClient
    server_pods: list[str]

    @property
    def url(self) -> str:
        domain = self.linked.clusters[SOURCE].domain
        return f"http://{MIRROR}.{self.namespace}.svc.{domain}:8080/"

    def identity(self, cluster: str, service_account: str) -> str:
        return self.linked.mesh.identity(cluster, self.namespace, service_account)

    def metrics(self, cluster: str, pod: str, namespace: str | None = None) -> Metrics:
        return self.linked.mesh.metrics(cluster, namespace or self.namespace, pod)

    def gateway(self) -> Metrics:
        return self.metrics(TARGET, gateway_pod(self.linked, TARGET), MC_NAMESPACE)


@pytest.fixture(scope="module")
def p2p(linked: Linked) -> Iterator[PodToPod]:
    ns = f"rd-{secrets.token_hex(3)}"
    kube = linked.kube
    created = []
    try:
        for k in kube.values():
            k.create_namespace(ns, labels={"isthmus.io/test": "true"})
            created.append(k)
            linked.mesh.adapter.mesh_namespace(k, ns)
        pods = deploy_server(linked.mesh, ns, TARGET, name=SERVER, replicas=2)
        linked.export(TARGET, ns, SERVER, "remote-discovery")
        mirror(linked, SOURCE, ns, MIRROR)
        client = Workloads(kube, ns).client(SOURCE)
        yield PodToPod(linked, ns, client, [pod_name(p) for p in pods])
    finally:
        for k in created:
            k.delete_namespace(ns, wait=False)
        for k in created:
            k.delete_namespace(ns, wait=True)


def _with_evidence(p2p: PodToPod, evidence: Evidence) -> LoadClient:
    p2p.client.evidence = evidence
    return p2p.client


@pytest.mark.conformance(
    short_name="mc-remote-discovery-mirror",
    description="A Service exported with mirror.linkerd.io/exported=remote-discovery is "
    "mirrored as <svc>-<cluster> labelled multicluster.linkerd.io/remote-discovery=<cluster> "
    "and multicluster.linkerd.io/remote-service=<svc>, with no Endpoints object (CONF-21)",
    features=["multicluster", "remote-discovery"],
    profile="multicluster",
    conf=["CONF-21"],
)
def test_remote_discovery_mirror_is_labelled_and_has_no_endpoints(
    p2p: PodToPod, evidence: Evidence
) -> None:
    ns, k = p2p.namespace, p2p.linked.kube[SOURCE]
    svc = mirror(p2p.linked, SOURCE, ns, MIRROR)
    labels = svc["metadata"].get("labels") or {}
    evidence.record("mirror_labels", labels)
    want = {
        REMOTE_DISCOVERY: TARGET,
        REMOTE_SERVICE: SERVER,
        MIRRORED: "true",
        CLUSTER_NAME: TARGET,
    }
    assert {key: labels.get(key) for key in want} == want, (
        f"CONF-21: expected mirror {ns}/{MIRROR} labelled {want}; it has {labels}"
    )
    assert endpoints(k, ns, MIRROR) is None, (
        f"CONF-21: expected no Endpoints {ns}/{MIRROR} for a remote-discovery mirror; "
        f"found {endpoints(k, ns, MIRROR)}"
    )


@pytest.mark.conformance(
    short_name="mc-remote-discovery-pod-to-pod",
    description="A meshed source pod calling a remote-discovery mirror reaches the target's "
    "pods directly over mTLS: the client's proxy resolved the remote pods (dst_pod) with "
    "their identity under the target's trust domain and labelled its metrics "
    "dst_target_cluster/service/service_namespace; the server saw the client's own identity "
    "(l5d-client-id and client_id, tls=true) on as many requests as the client sent, while "
    "the target gateway counted almost none (CONF-23, CONF-24, CONF-25, CONF-27, CONF-33)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-23", "CONF-24", "CONF-25", "CONF-27", "CONF-33"],
)
def test_pod_to_pod_traffic_bypasses_the_gateway(p2p: PodToPod, evidence: Evidence) -> None:
    ns = p2p.namespace
    client = _with_evidence(p2p, evidence)
    client_id = p2p.identity(SOURCE, "default")
    server_id = p2p.identity(TARGET, SERVER)
    with evidence.step("converge on the remote-discovery mirror"):
        converge(client, p2p.url)
    outbound = {
        "direction": "outbound",
        "dst_target_cluster": TARGET,
        "dst_target_service": SERVER,
        "dst_target_service_namespace": ns,
    }

    def server_inbound() -> float:
        return sum(
            p2p.metrics(TARGET, pod).sum(
                "request_total", direction="inbound", tls="true", client_id=client_id
            )
            for pod in p2p.server_pods
        )

    gateway_before = p2p.gateway().sum("request_total", server_id=server_id)
    before = p2p.metrics(SOURCE, client.pod)
    client_before = before.sum("request_total", **outbound)
    mtls_before = before.sum("request_total", tls="true", server_id=server_id, **outbound)
    server_before = server_inbound()

    result = client.run(p2p.url, REQUESTS, label=f"{SOURCE}/{client.pod} -> {p2p.url}")
    seen = statuses(result)
    assert seen == {"200": REQUESTS}, f"expected {REQUESTS} x 200 from {p2p.url}; saw {seen}"
    responders = [r["responder"] or {} for r in result["records"]]
    assert {r.get("cluster") for r in responders} == {TARGET}, (
        f"expected every answer from {TARGET}; saw {[r.get('cluster') for r in responders]}"
    )
    ids = {r.get("client_id") for r in responders}
    evidence.record("client_ids_seen_by_server", sorted(map(str, ids)))
    assert ids == {client_id}, (
        f"CONF-25: expected the server to see the client's own identity {client_id} in "
        f"l5d-client-id on every request (not the gateway's); it saw {ids}"
    )

    def client_counted() -> Metrics:
        m = p2p.metrics(SOURCE, client.pod)
        sent = m.sum("request_total", **outbound) - client_before
        assert sent >= REQUESTS, (
            f"CONF-27: expected {REQUESTS} more outbound requests labelled {outbound}; "
            f"{m.describe('request_total', direction='outbound')}"
        )
        return m

    at_client = eventually(f"[{SOURCE}] client proxy counted the run", client_counted)
    sent = at_client.sum("request_total", **outbound) - client_before
    evidence.record("client_outbound", at_client.describe("request_total", **outbound))
    mtls = at_client.sum("request_total", tls="true", server_id=server_id, **outbound)
    assert mtls - mtls_before >= REQUESTS, (
        f"CONF-23/CONF-33: expected the client's requests over mTLS to the server's identity "
        f"{server_id} (target trust domain); {at_client.describe('request_total', **outbound)}"
    )
    pods_seen = at_client.label_values("request_total", "dst_pod", **outbound)
    assert pods_seen, f"CONF-23: no dst_pod label on {outbound} at the client"
    assert pods_seen <= set(p2p.server_pods), (
        f"CONF-23: expected the client's proxy to have resolved the target's pods "
        f"{p2p.server_pods} (dst_pod); it reports {pods_seen}"
    )

    def server_counted() -> float:
        got = server_inbound() - server_before
        assert got >= REQUESTS, f"the servers counted {got} mTLS requests from {client_id}"
        return got

    received = eventually(f"[{TARGET}] servers counted the run", server_counted)
    gateway = p2p.gateway()
    via_gateway = gateway.sum("request_total", server_id=server_id) - gateway_before
    evidence.record(
        "counts",
        {"client_sent": sent, "servers_received": received, "gateway_forwarded": via_gateway},
    )
    assert received == pytest.approx(sent, rel=0.05), (
        f"CONF-24: expected the servers' count of requests from {client_id} ({received}) to "
        f"match the client's ({sent})"
    )
    assert via_gateway <= GATEWAY_SHARE * sent, (
        f"CONF-24: expected the target gateway to forward (almost) none of the pod-to-pod "
        f"run; it forwarded {via_gateway} of {sent}: "
        f"{gateway.describe('request_total', server_id=server_id)}"
    )


class _Load:
    """A client sending ``rate`` req/s in rounds until stopped; every record is kept."""

    def __init__(self, client: LoadClient, url: str, rate: float, per_round: int) -> None:
        self.client, self.url, self.rate, self.per_round = client, url, rate, per_round
        self.records: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="p2p-load", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                result = self.client.run(self.url, self.per_round, rate=self.rate, timeout=5)
                self.records.extend(result["records"])
        except BaseException as e:  # reported by stop()
            self.error = e

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUTS.http_call + self.per_round / self.rate + 10)

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != 200 or r.get("error")]


@pytest.mark.conformance(
    short_name="mc-remote-discovery-mode-switch",
    description="Switching an exported Service from remote-discovery to true and back, under "
    "load, adds then removes the mirror's gateway Endpoints while every request succeeds; "
    "requests cross through the gateway in gateway mode and pod to pod otherwise (CONF-22)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-22"],
)
def test_switching_export_mode_under_load_fails_no_request(
    p2p: PodToPod, evidence: Evidence
) -> None:
    ns, linked = p2p.namespace, p2p.linked
    k = linked.kube[SOURCE]
    client = _with_evidence(p2p, evidence)
    converge(client, p2p.url)
    gateway_id = linked.mesh.identity(TARGET, MC_NAMESPACE, GATEWAY_SA)

    def gateway_endpoints() -> bool:
        eps = endpoints(k, ns, MIRROR)
        assert eps is not None, f"no Endpoints {ns}/{MIRROR} yet"
        assert addresses(eps), f"Endpoints {ns}/{MIRROR} have no ready address: {eps}"
        return True

    def no_endpoints() -> bool:
        eps = endpoints(k, ns, MIRROR)
        assert eps is None, f"Endpoints {ns}/{MIRROR} still exist: {eps}"
        return True

    with _Load(client, p2p.url, rate=20, per_round=40) as load:
        with evidence.step("switch to gateway mode (exported=true) under load"):
            linked.export(TARGET, ns, SERVER, "true")
            eventually(f"[{SOURCE}] gateway Endpoints of {MIRROR}", gateway_endpoints)
        eventually(
            "requests answered through the gateway",
            lambda: any(
                (r["responder"] or {}).get("client_id") == gateway_id for r in load.records
            ),
            TIMEOUTS.convergence,
        )
        with evidence.step("switch back to remote-discovery under load"):
            linked.export(TARGET, ns, SERVER, "remote-discovery")
            eventually(f"[{SOURCE}] Endpoints of {MIRROR} removed", no_endpoints)
        mark = len(load.records)
        eventually(
            "requests answered pod to pod again",
            lambda: len(load.records) > mark + 40,
            TIMEOUTS.convergence,
        )
    assert load.error is None, f"the load client failed: {load.error}"
    ids: dict[str, int] = {}
    for r in load.records:
        who = str((r["responder"] or {}).get("client_id"))
        ids[who] = ids.get(who, 0) + 1
    evidence.record("load", {"requests": len(load.records), "client_ids_seen": ids})
    failed = load.failures()
    assert not failed, (
        f"CONF-22: expected no failed request while switching modes; {len(failed)} of "
        f"{len(load.records)} failed: {failed[:5]}"
    )
    client_id = p2p.identity(SOURCE, "default")
    assert ids.get(gateway_id, 0) > 0, f"expected requests through the gateway; saw {ids}"
    assert ids.get(client_id, 0) > 0, f"expected requests pod to pod ({client_id}); saw {ids}"


@pytest.mark.conformance(
    short_name="mc-remote-discovery-unknown-cluster",
    description="A remote-discovery mirror naming a cluster no Link (credentials) exists for "
    "is answered at once: discovery says 'remote cluster not found' and the client's requests "
    "fail fast instead of hanging (CONF-26)",
    features=["multicluster", "remote-discovery", "injection"],
    profile="multicluster",
    conf=["CONF-26"],
)
def test_unknown_cluster_is_not_found_at_once(p2p: PodToPod, evidence: Evidence) -> None:
    ns, k = p2p.namespace, p2p.linked.kube[SOURCE]
    cluster = f"nowhere{secrets.token_hex(2)}"
    name = f"{SERVER}-{cluster}"
    k.apply(
        _GHOST_MIRROR,
        namespace=ns,
        name=name,
        cluster=cluster,
        service=SERVER,
    )
    try:
        client = _with_evidence(p2p, evidence)
        host = f"{name}.{ns}.svc.{p2p.linked.clusters[SOURCE].domain}"
        url = f"http://{host}:8080/"
        ghost = k.client.get(Service, name, namespace=ns)
        ip = ghost.spec.clusterIP if ghost.spec else None

        def resolvable() -> bool:
            answer = client.resolve(host)
            assert answer.get("addresses") == [ip], f"{host} resolves to {answer}, not [{ip}]"
            return True

        eventually(f"[{SOURCE}] {host} resolves to its cluster IP {ip}", resolvable)
        started = time.monotonic()
        result = client.run(url, 3, timeout=10, concurrency=1, label=f"-> {url}")
        took = time.monotonic() - started
        seen = statuses(result)
        errors = [r.get("error") for r in result["records"]]
        assert "200" not in seen, f"expected no answer from a cluster that is not linked: {seen}"
        assert took < 3 * 5, (
            f"CONF-26: expected the 3 requests to fail fast (each well under its 10 s "
            f"timeout); they took {took:.1f}s: {seen} {errors}"
        )
        message = "remote cluster not found"

        def logged() -> list[str]:
            text = _destination_logs(p2p.linked) + _logs(k, ns, client.pod, "linkerd-proxy")
            lines = [ln for ln in text.splitlines() if message in ln.lower() and cluster in ln]
            assert lines, f"neither destination nor the client's proxy logged {message!r}"
            return lines

        lines = eventually(f"[{SOURCE}] discovery answers {message!r} for {cluster}", logged)
        evidence.record("discovery_answer", lines[-3:])
    finally:
        delete_service(k, ns, name)


@pytest.mark.conformance(
    short_name="mc-remote-discovery-broken-credentials",
    description="A link of its own serves a remote-discovery mirror pod to pod through its "
    "credentials Secret; once that Secret holds an unusable kubeconfig, discovery answers "
    "'remote cluster not found' for the link's cluster, the client already streaming drops "
    "the stale endpoints, and a fresh client's requests fail fast instead of hanging "
    "(CONF-26)",
    features=["multicluster", "remote-discovery", "injection"],
    profile="multicluster",
    conf=["CONF-26"],
)
def test_broken_credentials_are_not_found_at_once(p2p: PodToPod, evidence: Evidence) -> None:
    ns, linked = p2p.namespace, p2p.linked
    source, target = linked.kube[SOURCE], linked.kube[TARGET]
    name = private_name("rd")
    # only this test's link mirrors the server, and only in remote-discovery mode
    target.client.patch(Service, SERVER, {"metadata": {"labels": {LINK_LABEL: name}}}, namespace=ns)
    client = _with_evidence(p2p, evidence)
    args = (f"--remote-discovery-selector={LINK_LABEL}={name}",)
    with private_link(linked, name, f"{LINK_LABEL}={name}-none", args):
        mirror(linked, SOURCE, ns, f"{SERVER}-{name}")
        url = f"http://{SERVER}-{name}.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"
        with evidence.step(f"the link {name} serves {SERVER}-{name} pod to pod"):
            converge(client, url)
        secret = f"cluster-credentials-{name}"
        broken = base64.b64encode(b"apiVersion: v1\nkind: Config\nclusters: 3\n").decode()
        with evidence.step(f"break the kubeconfig of Secret {MC_NAMESPACE}/{secret}"):
            source.client.patch(
                Secret, secret, {"data": {"kubeconfig": broken}}, namespace=MC_NAMESPACE
            )
        message = f"remote cluster not found: {name}"

        def answered() -> list[str]:
            lines = [ln for ln in _destination_logs(linked).splitlines() if message in ln]
            assert lines, f"destination has not answered {message!r}"
            return lines

        lines = eventually(f"[{SOURCE}] discovery answers {message!r}", answered)
        evidence.record("discovery_answer", lines[-3:])

        # the pods are still reachable pod to pod: only dropped endpoints stop the answers
        def stale_dropped() -> dict[str, int]:
            result = client.run(url, 3, timeout=10, concurrency=1, label=f"streaming -> {url}")
            seen = statuses(result)
            assert "200" not in seen, (
                f"CONF-26: expected the client already streaming {SERVER}-{name} to drop its "
                f"endpoints once the credentials broke; statuses {seen}"
            )
            return seen

        with evidence.step("the client already streaming is no longer answered"):
            dropped = eventually(
                f"[{SOURCE}] the streaming client's endpoints dropped", stale_dropped
            )
        evidence.record("streaming_client_statuses", dropped)
        fresh = Workloads(linked.kube, ns, evidence).client(SOURCE, name="fresh")
        started = time.monotonic()
        result = fresh.run(url, 3, timeout=10, concurrency=1, label=f"fresh -> {url}")
        took = time.monotonic() - started
        assert "200" not in statuses(result), (
            f"expected a fresh client to get no answer through broken credentials: "
            f"{statuses(result)}"
        )
        assert took < 3 * 5, (
            f"CONF-26: expected a fresh client's requests to fail fast once the credentials "
            f"are broken; 3 took {took:.1f}s: {statuses(result)}"
        )


_GHOST_MIRROR = """
apiVersion: v1
kind: Service
metadata:
  name: $name
  labels:
    mirror.linkerd.io/mirrored-service: "true"
    mirror.linkerd.io/cluster-name: $cluster
    multicluster.linkerd.io/remote-discovery: $cluster
    multicluster.linkerd.io/remote-service: $service
spec:
  ports:
  - {name: http, port: 8080, protocol: TCP}
"""


def _logs(k: Kube, namespace: str, pod: str, container: str) -> str:
    r = k.http.get(
        f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
        params={"container": container},
        timeout=TIMEOUTS.http_call,
    )
    assert r.status_code == 200, f"[{k.name}] logs of {namespace}/{pod}: {r.status_code} {r.text}"
    return r.text


def _destination_logs(linked: Linked) -> str:
    """What the source's destination service logged (its ``destination`` container)."""
    k = linked.kube[SOURCE]
    ns = linked.mesh.adapter.control_plane_ns
    names = [p.metadata.name for p in k.pods(ns) if p.metadata and p.metadata.name]
    texts = [_logs(k, ns, n, "destination") for n in names if n.startswith("linkerd-destination")]
    assert texts, f"[{SOURCE}] no linkerd-destination pod in {ns}"
    return "\n".join(texts)
