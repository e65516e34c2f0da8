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
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube.generic_resource import create_namespaced_resource
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

# so that Kube.apply can load TrafficSplits (lightkube knows only registered kinds)
for _version in ("v1alpha1", "v1alpha2"):
    create_namespaced_resource("split.smi-spec.io", _version, "TrafficSplit", "trafficsplits")

SPLIT_MANIFEST = """
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: $name
  namespace: $ns
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
    """One observed move of the traffic; times in seconds from ``trigger``."""

    direction: str
    trigger: str
    traffic_moved_s: float
    weights_seen_s: float
    before: dict[str, int]
    after: dict[str, int]


def primary_ready(kube: Kube, ns: str) -> bool:
    r = kube.http.get(f"/api/v1/namespaces/{ns}/endpoints/{SERVICE}")
    subsets = r.json().get("subsets") or [] if r.status_code == 200 else []
    return any(s.get("addresses") for s in subsets)


def observe_shift(
    linked: Linked,
    client: LoadClient,
    ns: str,
    url: str,
    replicas: int,
    evidence: Evidence,
) -> Shift:
    """Under steady load, scale the primary to ``replicas``; wait for the split's weights
    to follow and the traffic to settle on the other side; judge and time the shift.

    Scaling to 0 removes the primary's endpoints at once, so a failover is timed from the
    scale command; a failback from the primary's Endpoints being seen ready (polled every
    ``POLL`` s, so times are within a poll of the truth).
    """
    kube = linked.kube[SOURCE]
    failback = replicas > 0
    to = SOURCE if failback else TARGET
    want = {SERVICE: 1, MIRROR: 0} if failback else {SERVICE: 0, MIRROR: 1}
    direction = "failback" if failback else "failover"
    marks: dict[str, float] = {}
    load = SteadyLoad(client, url)
    load.start()
    try:
        marks["scaled"] = time.monotonic()
        scale(kube, ns, replicas)

        def followed() -> bool | None:
            now = time.monotonic()
            if failback and "ready" not in marks and primary_ready(kube, ns):
                marks["ready"] = now
            if weights(kube, ns) != want:
                return None
            marks.setdefault("ready", now)
            marks["weights"] = now
            return True

        wait_for(
            f"[{SOURCE}] TrafficSplit {ns}/{SPLIT} weights {want}",
            followed,
            TIMEOUTS.failover_shift,
            lambda: f"weights {weights(kube, ns)}",
            interval=POLL,
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
    after = records[first:]
    before_shift = statuses({"records": records[:first]})
    after_shift = statuses({"records": after})
    summary = {
        "direction": direction,
        "requests": len(records),
        "before_shift": before_shift,
        "after_shift": after_shift,
        "answered_after_shift": sorted({str(answered_by(r)) for r in after}),
    }
    evidence.record("traffic", summary)
    wrong = [
        f"#{i}: {r['status']} {r.get('error') or ''} from {answered_by(r) or 'nobody'}"
        for i, r in enumerate(after, start=first)
        if answered_by(r) != to
    ]
    assert not wrong, (
        f"CONF-49: once traffic had moved to {to} ({direction}), expected every request to "
        f"succeed there; {len(wrong)} of {len(after)} did not: {wrong[:5]}"
    )
    if failback:
        failed = [r for r in records[:first] if r.get("status") != 200]
        assert not failed, (
            f"CONF-49: the secondary stayed up during the failback, so no request should "
            f"fail; {len(failed)} did before the shift: {statuses({'records': failed})}"
        )
    trigger = marks["ready"] if failback else marks["scaled"]
    return Shift(
        direction=direction,
        trigger="primary Endpoints seen ready" if failback else "scale to 0",
        traffic_moved_s=round(points[first][0] - trigger, 3),
        weights_seen_s=round(marks["weights"] - trigger, 3),
        before=before_shift,
        after=after_shift,
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
    features=["multicluster", "multicluster-gateway", "injection", "traffic-split", "failover"],
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

    with evidence.step("the managed split: everything to the ready primary"):
        source.apply(SPLIT_MANIFEST, ns=ns, name=SPLIT, primary=SERVICE, secondary=MIRROR)
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
            shifts.append(observe_shift(linked, client, ns, url, 0, evidence))
        with evidence.step(f"cycle {cycle}: scale the primary back to 1"):
            shifts.append(observe_shift(linked, client, ns, url, 1, evidence))
            source.wait_deployment_ready(SERVICE, ns)

    reasons = [e.get("reason") for e in split_events(source, ns)]
    figures: dict[str, Any] = {"shifts": [s.__dict__ for s in shifts]}
    for direction in ("failover", "failback"):
        moved = [s.traffic_moved_s for s in shifts if s.direction == direction]
        written = [s.weights_seen_s for s in shifts if s.direction == direction]
        figures[direction] = {
            "traffic_moved_p50_s": percentile(moved, 50),
            "traffic_moved_max_s": max(moved),
            "weights_seen_p50_s": percentile(written, 50),
            "weights_seen_max_s": max(written),
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
  namespace: $ns
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
  namespace: $ns
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
    source.apply(BAD_SPLITS, ns=namespace)

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
