"""Failover (CONF-49): a TrafficSplit managed by the mesh's failover controller follows
its primary's readiness, and traffic follows the split without failed requests.

linkerd-failover's API: the split is labelled ``app.kubernetes.io/managed-by:
linkerd-failover`` and annotated ``failover.linkerd.io/primary-service``; its other
backend is the gateway-mode mirror of the same service in the linked cluster. The
test scales the primary to 0 and back, twice, under steady load from a meshed client
in the source, and judges on three kinds of evidence: the split's weights (the
controller's writes), its Events, and who answered each request (the server names
its cluster). "Shifted" is the first request answered by the new side; from there on
every request must succeed and be answered by that side. Shift times (from the scale
command, and from the weights being seen written) are recorded as evidence with their
p50 and max.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment

from fixtures.mesh import Mesh
from fixtures.multicluster import Linked
from fixtures.workloads import LoadClient, Workloads
from harness.kube import Kube, wait_for
from harness.reporting import Evidence
from harness.reporting.evidence import percentile
from harness.settings import TIMEOUTS
from suites.mesh._support import converge, deploy_server, statuses
from suites.multicluster._support import eventually, mirror

SOURCE, TARGET = "source", "target"
SERVICE = "web"
SPLIT = "web-failover"
MIRROR = f"{SERVICE}-{TARGET}"
#: scale-down/scale-up rounds (each gives one failover and one failback shift time).
CYCLES = 2
#: requests per second of the steady load while a shift happens.
RATE = 10
#: seconds of load per call of the load client (the timeline is stitched from calls).
CHUNK_SECONDS = 2
#: a request gets this long (seconds) before it counts as failed.
REQUEST_TIMEOUT = 3
#: requests in a row answered by the new side, after the shift, that end an observation.
SETTLED_AFTER = 3 * RATE
#: seconds between reads of the split's weights.
POLL = 0.25

SPLIT_MANIFEST = """
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: $name
  labels:
    app.kubernetes.io/managed-by: linkerd-failover
  annotations:
    failover.linkerd.io/primary-service: $primary
spec:
  service: $primary
  backends:
  - service: $primary
    weight: 1
  - service: $secondary
    weight: 0
"""


def split_path(ns: str, name: str = SPLIT) -> str:
    return f"/apis/split.smi-spec.io/v1alpha2/namespaces/{ns}/trafficsplits/{name}"


def weights(kube: Kube, ns: str) -> dict[str, int]:
    r = kube.http.get(split_path(ns))
    assert r.status_code == 200, f"[{kube.name}] GET TrafficSplit {ns}/{SPLIT}: {r.text[:300]}"
    return {b["service"]: int(b["weight"]) for b in r.json()["spec"]["backends"]}


def split_events(kube: Kube, ns: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind=TrafficSplit,involvedObject.name={SPLIT}"
    r = kube.http.get(f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": selector})
    assert r.status_code == 200, f"[{kube.name}] listing Events: {r.text[:300]}"
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda e: e.get("lastTimestamp") or e["metadata"]["name"])


def scale(kube: Kube, ns: str, replicas: int) -> None:
    kube.client.patch(Deployment, SERVICE, {"spec": {"replicas": replicas}}, namespace=ns)


@dataclass
class Timeline:
    """Requests of a steady load, each stamped with when it was scheduled (monotonic)."""

    points: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, started: float, records: list[dict[str, Any]]) -> None:
        with self.lock:
            self.points.extend((started + r["i"] / RATE, r) for r in records)

    def snapshot(self) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return sorted(self.points, key=lambda p: p[0])


class SteadyLoad(threading.Thread):
    """``RATE`` requests/s from the client to ``url``, in back-to-back calls, until stopped."""

    def __init__(self, client: LoadClient, url: str) -> None:
        super().__init__(daemon=True)
        # no evidence per call: the test records one summary per observation
        self.client = LoadClient(client.kube, client.namespace, client.pod)
        self.url = url
        self.timeline = Timeline()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                result = self.client.run(
                    self.url,
                    RATE * CHUNK_SECONDS,
                    rate=RATE,
                    timeout=REQUEST_TIMEOUT,
                    concurrency=RATE * REQUEST_TIMEOUT,
                )
                self.timeline.add(started, result["records"])
        except BaseException as e:  # reported by the test thread
            self.error = e

    def stop(self) -> list[tuple[float, dict[str, Any]]]:
        self.stopping.set()
        self.join(timeout=CHUNK_SECONDS * 2 + REQUEST_TIMEOUT + TIMEOUTS.http_call)
        if self.error is not None:
            raise AssertionError(f"the steady load failed: {self.error}") from self.error
        return self.timeline.snapshot()


def answered_by(record: dict[str, Any]) -> str | None:
    who = record.get("responder") or {}
    return who.get("cluster") if record.get("status") == 200 else None


def first_from(points: list[tuple[float, dict[str, Any]]], cluster: str) -> int | None:
    return next((i for i, (_, r) in enumerate(points) if answered_by(r) == cluster), None)


@dataclass
class Shift:
    """One observed move of the traffic."""

    direction: str
    since_scale_s: float
    weights_seen_s: float
    traffic_after_weights_s: float
    before: dict[str, int]
    after: dict[str, int]


def observe_shift(
    linked: Linked,
    client: LoadClient,
    ns: str,
    url: str,
    act: Callable[[], None],
    to: str,
    want: dict[str, int],
    evidence: Evidence,
    direction: str,
) -> Shift:
    """Run the steady load, ``act`` (scale), wait for the split to read ``want`` and the
    traffic to settle on cluster ``to``; judge and time the shift."""
    kube = linked.kube[SOURCE]
    load = SteadyLoad(client, url)
    load.start()
    scaled_at = time.monotonic()
    try:
        act()
        seen_weights = eventually(
            f"[{SOURCE}] TrafficSplit {ns}/{SPLIT} weights {want}",
            lambda: time.monotonic() if weights(kube, ns) == want else None,
            TIMEOUTS.failover_shift,
        )

        def settled() -> bool | None:
            points = load.timeline.snapshot()
            first = first_from(points, to)
            if first is None:
                return None
            after = [r for _, r in points[first:]]
            if any(answered_by(r) != to for r in after):
                return True  # judged below: a failure after the shift
            return True if len(after) >= SETTLED_AFTER else None

        wait_for(
            f"[{SOURCE}] {SETTLED_AFTER} requests in a row answered by {to} after the shift",
            settled,
            TIMEOUTS.failover_shift,
            lambda: json.dumps(statuses({"records": [r for _, r in load.timeline.snapshot()]})),
        )
    finally:
        points = load.stop()
    records = [r for _, r in points]
    first = first_from(points, to)
    assert first is not None, f"CONF-49: no request was answered by {to}"
    shifted_at = points[first][0]
    after = records[first:]
    wrong = [
        f"#{i}: {r['status']} {r.get('error') or ''} from {answered_by(r) or 'nobody'}"
        for i, r in enumerate(after, start=first)
        if answered_by(r) != to
    ]
    summary = {
        "direction": direction,
        "requests": len(records),
        "before_shift": statuses({"records": records[:first]}),
        "after_shift": statuses({"records": after}),
        "answered_after_shift": sorted({str(answered_by(r)) for r in after}),
    }
    evidence.record("traffic", summary)
    assert not wrong, (
        f"CONF-49: once traffic had moved to {to} ({direction}), expected every request to "
        f"succeed there; {len(wrong)} of {len(after)} did not: {wrong[:5]}"
    )
    return Shift(
        direction=direction,
        since_scale_s=round(shifted_at - scaled_at, 3),
        weights_seen_s=round(seen_weights - scaled_at, 3),
        traffic_after_weights_s=round(shifted_at - seen_weights, 3),
        before=statuses({"records": records[:first]}),
        after=statuses({"records": after}),
    )


def controller_metrics(linked: Linked) -> str | None:
    """The failover controller's /metrics text (its ``admin-http`` port), if it has one."""
    ns, name = linked.mesh.adapter.components.get("failover", ("", ""))
    if not name:
        return None
    kube = linked.kube[SOURCE]
    deployment = kube.client.get(Deployment, name, namespace=ns)
    spec = deployment.spec
    assert spec is not None
    assert spec.selector.matchLabels is not None
    pods = kube.pods(ns, dict(spec.selector.matchLabels))
    ports = [
        p.containerPort
        for c in (spec.template.spec.containers if spec.template.spec else [])
        for p in c.ports or []
        if p.name == "admin-http"
    ]
    if not pods or not ports or pods[0].metadata is None or pods[0].metadata.name is None:
        return None
    r = kube.pod_proxy(ns, pods[0].metadata.name, ports[0], "/metrics")
    return r.text if r.status_code == 200 else None


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="split-failover",
    description="A TrafficSplit managed for failover (app.kubernetes.io/managed-by: "
    "linkerd-failover, failover.linkerd.io/primary-service) sends everything to the local "
    "primary while it has ready endpoints, moves to the remote cluster's mirror when the "
    "primary is scaled to 0 and back when it returns, with no failed request once each "
    "shift has happened; shift times recorded (CONF-49)",
    features=["multicluster", "multicluster-gateway", "injection", "failover"],
    profile="multicluster",
    conf=["CONF-49"],
)
def test_failover_follows_the_primary_readiness(
    linked: Linked, mc_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    ns = mc_namespace
    source = linked.kube[SOURCE]
    with evidence.step("deploy the service in both clusters, export it from the target"):
        deploy_server(linked.mesh, ns, SOURCE, name=SERVICE)
        deploy_server(linked.mesh, ns, TARGET, name=SERVICE)
        linked.export(TARGET, ns, SERVICE, "true")
        mirror(linked, SOURCE, ns, MIRROR)
        client = workloads.client(SOURCE)
    url = f"http://{SERVICE}.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"
    primary_only = {SERVICE: 1, MIRROR: 0}
    mirror_only = {SERVICE: 0, MIRROR: 1}

    with evidence.step("the managed split: everything to the ready primary"):
        source.apply(SPLIT_MANIFEST, namespace=ns, name=SPLIT, primary=SERVICE, secondary=MIRROR)
        converge(client, url)
        assert weights(source, ns) == primary_only
        result = client.run(url, 20, label=f"{SOURCE}/{client.pod} -> {url} (primary up)")
        who = {answered_by(r) for r in result["records"]}
        assert who == {SOURCE}, (
            f"CONF-49: with the primary ready, expected every answer from {SOURCE}; "
            f"saw {statuses(result)} from {who}"
        )

    shifts: list[Shift] = []
    for cycle in range(1, CYCLES + 1):
        with evidence.step(f"cycle {cycle}: scale the primary to 0"):
            shifts.append(
                observe_shift(
                    linked,
                    client,
                    ns,
                    url,
                    lambda: scale(source, ns, 0),
                    TARGET,
                    mirror_only,
                    evidence,
                    "failover",
                )
            )
        with evidence.step(f"cycle {cycle}: scale the primary back to 1"):
            shifts.append(
                observe_shift(
                    linked,
                    client,
                    ns,
                    url,
                    lambda: scale(source, ns, 1),
                    SOURCE,
                    primary_only,
                    evidence,
                    "failback",
                )
            )
            source.wait_deployment_ready(SERVICE, ns)

    reasons = [e.get("reason") for e in split_events(source, ns)]
    figures: dict[str, Any] = {"shifts": [s.__dict__ for s in shifts]}
    for direction in ("failover", "failback"):
        times = [s.since_scale_s for s in shifts if s.direction == direction]
        figures[direction] = {
            "since_scale_p50_s": percentile(times, 50),
            "since_scale_max_s": max(times),
            "after_weights_max_s": max(
                s.traffic_after_weights_s for s in shifts if s.direction == direction
            ),
        }
    evidence.record("shift_times", figures)
    evidence.record("events", reasons)
    metrics = controller_metrics(linked)
    if metrics is not None:
        evidence.record(
            "controller_metrics",
            [line for line in metrics.splitlines() if line.startswith("failover_")],
        )
    assert reasons.count("FailoverSecondaries") >= CYCLES, (
        f"expected a FailoverSecondaries Event on {ns}/{SPLIT} per cycle; Events: {reasons}"
    )
    assert reasons.count("FailoverPrimary") >= CYCLES, (
        f"expected a FailoverPrimary Event on {ns}/{SPLIT} per cycle; Events: {reasons}"
    )


BAD_SPLITS = """
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: ghost-primary
  labels:
    app.kubernetes.io/managed-by: linkerd-failover
  annotations:
    failover.linkerd.io/primary-service: ghost
spec:
  service: web
  backends:
  - service: web
    weight: 1
  - service: web-target
    weight: 0
---
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata:
  name: bad-weight
  labels:
    app.kubernetes.io/managed-by: linkerd-failover
spec:
  service: web
  backends:
  - service: web
    weight: lots
"""


def reasons_for(kube: Kube, ns: str, name: str) -> list[str]:
    selector = f"involvedObject.kind=TrafficSplit,involvedObject.name={name}"
    r = kube.http.get(f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": selector})
    assert r.status_code == 200, f"[{kube.name}] listing Events: {r.text[:300]}"
    return [str(e.get("reason")) for e in r.json()["items"]]


@pytest.mark.conformance(
    short_name="split-failover-bad-input",
    description="A failover-managed TrafficSplit naming a primary that is not one of its "
    "backends, or carrying a weight that is no number, is reported by a Warning Event and "
    "left as written (the controller keeps running)",
    features=["failover"],
    profile="multicluster",
)
def test_failover_reports_unusable_splits(mesh: Mesh, namespace: str, evidence: Evidence) -> None:
    source = next(iter(mesh.kube.values()))
    source.apply(BAD_SPLITS, namespace=namespace)

    def reported() -> dict[str, list[str]] | None:
        seen = {
            name: reasons_for(source, namespace, name) for name in ("ghost-primary", "bad-weight")
        }
        ok = "FailoverInvalid" in seen["ghost-primary"] and "UnusableObject" in seen["bad-weight"]
        assert ok, f"Events so far: {seen}"
        return seen

    seen = eventually("Warning Events on both unusable splits", reported)
    evidence.record("events", seen)
    r = source.http.get(
        f"/apis/split.smi-spec.io/v1alpha2/namespaces/{namespace}/trafficsplits/ghost-primary"
    )
    backends = r.json()["spec"]["backends"]
    assert [b["weight"] for b in backends] == [1, 0], (
        f"expected the split with an unknown primary left as written; it reads {backends}"
    )
