"""Traffic splits across clusters: SMI TrafficSplit, HTTPRoute weights, bad input.

Every test divides the source's ``server`` Service (the apex) between the local
``server`` and ``server-target``, the gateway-mode mirror of the target's (see
``_support``). Who answered is read from the test server's own answer (its cluster),
and a 500 without an answer is the client proxy's own reply for a backend that does
not exist. Shares are judged at ALPHA = 0.001 (two-sided exact binomial test for two
backends, chi-square goodness of fit for three) and recorded per step as evidence,
drawn as bar charts in the HTML report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube.resources.core_v1 import Service

from fixtures.multicluster import Linked
from fixtures.workloads import LoadClient, Workloads
from harness.kube import Kube, wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import statuses
from suites.multicluster._support import (
    LINK_LABEL,
    eventually,
    mirror,
    private_link,
    private_name,
)
from suites.split._support import (
    ALPHA,
    APEX,
    LOCAL,
    REMOTE,
    SOURCE,
    TARGET,
    SplitSite,
    backends,
    build_site,
    cover_namespace,
    create,
    delete,
    events_for,
    judge,
    manifest,
    patch,
    record_share,
    responder_cluster,
    route_api,
    routes_to,
    split_api,
    tally,
)

#: requests measured per judged step (concurrency 4).
SAMPLE = 240


@pytest.fixture(scope="module")
def shared_site(linked: Linked) -> Iterator[SplitSite]:
    yield from build_site(linked)


@pytest.fixture
def site(shared_site: SplitSite, evidence: Evidence, request: pytest.FixtureRequest) -> SplitSite:
    cover_namespace(request, shared_site.namespace)
    return shared_site.for_test(evidence)


def _split_takes_effect(site: SplitSite, what: str) -> None:
    """Wait until a request reaches the remote cluster (the split is in the proxy)."""
    last: list[str] = []

    def attempt() -> bool | None:
        seen = tally(site.client.run(site.url, 10, concurrency=2, timeout=3))
        last[:] = [str(dict(seen))]
        return True if TARGET in seen else None

    wait_for(what, attempt, TIMEOUTS.convergence, lambda: last[-1] if last else "no answer")


def _measure(
    site: SplitSite, evidence: Evidence, step: str, weights: dict[str, float]
) -> dict[str, int]:
    result = site.client.run(site.url, SAMPLE, concurrency=4, timeout=5, label=step)
    counts = dict(tally(result))
    verdict = judge(counts, weights)
    record_share(evidence, step, weights, counts, verdict)
    assert verdict.holds, f"{step}: expected shares by weight {weights}; {verdict.describe()}"
    return counts


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="split-smi-trafficsplit",
    description="An SMI TrafficSplit on an apex Service divides its requests by weight "
    "between the local backend and the gateway-mode mirror of the remote cluster's, "
    "written as v1alpha2 (integer weights 50/50) and as v1alpha1 (quantities 250m/750m); "
    f"each share passes a two-sided exact binomial test at alpha={ALPHA} over {SAMPLE} "
    "requests; deleting the split restores direct routing to the local Service (CONF-39)",
    features=["multicluster", "multicluster-gateway", "traffic-split"],
    profile="multicluster",
    conf=["CONF-39"],
)
def test_trafficsplit_divides_by_weight_and_deleting_it_routes_directly(
    site: SplitSite, evidence: Evidence
) -> None:
    ns, source = site.namespace, site.source
    cases = [
        ("v1alpha2", "split-v2", 50, 50),
        ("v1alpha1", "split-v1", "250m", "750m"),
    ]
    for version, name, local_w, remote_w in cases:
        obj = manifest(
            f"trafficsplit-{version}.yaml",
            name=name,
            apex=APEX,
            local=LOCAL,
            remote=REMOTE,
            local_weight=local_w,
            remote_weight=remote_w,
        )
        try:
            with evidence.step(f"{version} TrafficSplit {local_w}/{remote_w}"):
                create(source, split_api(ns, version), obj)
                _split_takes_effect(site, f"[{SOURCE}] the {version} split reaches {TARGET}")
                weights = {SOURCE: _milli(local_w), TARGET: _milli(remote_w)}
                _measure(site, evidence, f"{version} {local_w}/{remote_w}", weights)
        finally:
            delete(source, split_api(ns, version), name)
        with evidence.step(f"{version} split deleted: direct routing"):
            routes_to(site, {SOURCE}, f"the {version} split deleted")


def _milli(weight: int | str) -> float:
    text = str(weight)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="split-httproute-weights",
    description="A GAMMA HTTPRoute (gateway.networking.k8s.io/v1, parentRef the apex "
    "Service) divides requests by its backendRefs' weights, default 1: local, the remote "
    "mirror and a Service that does not exist get a third each (chi-square goodness of "
    f"fit at alpha={ALPHA}), the missing backend's share answered 500 by the client's "
    "proxy; a header match sends everything to the mirror and a path match everything to "
    "the local backend; deleting the route restores direct routing (CONF-40)",
    features=["multicluster", "multicluster-gateway", "traffic-split", "http-routes"],
    profile="multicluster",
    conf=["CONF-40"],
)
def test_httproute_weights_matches_and_a_missing_backend(
    site: SplitSite, evidence: Evidence
) -> None:
    ns, source = site.namespace, site.source
    name = "weighted"
    obj = manifest(
        "httproute-weighted.yaml",
        name=name,
        apex=APEX,
        local=LOCAL,
        remote=REMOTE,
        missing="no-such-backend",
    )
    try:
        with evidence.step("HTTPRoute applied"):
            create(source, route_api(ns), obj)
            _split_takes_effect(site, f"[{SOURCE}] the HTTPRoute reaches {TARGET}")
        with evidence.step("weighted rule: three backends of weight 1"):
            result = site.client.run(site.url, SAMPLE, concurrency=4, timeout=5, label="weights")
            counts = dict(tally(result))
            weights = {SOURCE: 1.0, TARGET: 1.0, "status 500": 1.0}
            verdict = judge(counts, weights)
            record_share(
                evidence, "HTTPRoute 1/1/1 (one backend missing)", weights, counts, verdict
            )
            assert set(counts) <= set(weights), (
                f"CONF-40: expected answers from {SOURCE}, {TARGET} or the proxy's 500 for the "
                f"missing backend; saw {counts} (statuses {statuses(result)})"
            )
            assert verdict.holds, f"CONF-40: expected a third each; {verdict.describe()}"
        with evidence.step("header match: x-split: remote"):
            routes_to(site, {TARGET}, "header match", headers={"x-split": "remote"})
        with evidence.step("path match: /local"):
            routes_to(site, {SOURCE}, "path match", path="/local/items")
    finally:
        delete(source, route_api(ns), name)
    with evidence.step("route deleted: direct routing"):
        routes_to(site, {SOURCE}, "the HTTPRoute deleted")


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="split-bad-input",
    description="Bad split objects are reported and leave other routing untouched: a "
    "TrafficSplit naming a missing apex (Event ApexNotFound), one whose weights add up to "
    "0 on the real apex (Event NoWeight, the apex still routed directly), a v1alpha1 "
    "split with a negative quantity (skipped with an UnusableObject Event), an HTTPRoute "
    "whose parent Service does not exist (Event ParentNotFound); the v1alpha2 schema "
    "refuses a negative integer weight; the destination service keeps answering (SEC-4)",
    features=["multicluster", "traffic-split"],
    profile="multicluster",
    conf=["SEC-4"],
)
def test_bad_split_objects_are_reported_and_routing_is_untouched(
    site: SplitSite, evidence: Evidence
) -> None:
    ns, source = site.namespace, site.source
    made: list[tuple[str, str]] = []

    def split(name: str, version: str, apex: str, local_w: object, remote_w: object) -> None:
        obj = manifest(
            f"trafficsplit-{version}.yaml",
            name=name,
            apex=apex,
            local=LOCAL,
            remote=REMOTE,
            local_weight=local_w,
            remote_weight=remote_w,
        )
        create(source, split_api(ns, version), obj)
        made.append((split_api(ns, version), name))

    try:
        with evidence.step("apply the bad objects"):
            split("no-apex", "v1alpha2", "ghost", 1, 1)
            split("no-weight", "v1alpha2", APEX, 0, 0)
            split("negative", "v1alpha1", APEX, "-1", "2")
            route = manifest(
                "httproute-unknown-parent.yaml", name="orphan", parent="ghost", backend=REMOTE
            )
            create(source, route_api(ns), route)
            made.append((route_api(ns), "orphan"))
        with evidence.step("v1alpha2 refuses a negative weight"):
            refused = source.http.post(
                split_api(ns),
                json=manifest(
                    "trafficsplit-v1alpha2.yaml",
                    name="refused",
                    apex=APEX,
                    local=LOCAL,
                    remote=REMOTE,
                    local_weight=-1,
                    remote_weight=1,
                ),
            )
            assert refused.status_code == 422, (
                f"expected the v1alpha2 schema to refuse weight -1 (422); got "
                f"{refused.status_code}: {refused.text[:300]}"
            )
        expected = {
            ("TrafficSplit", "no-apex"): "ApexNotFound",
            ("TrafficSplit", "no-weight"): "NoWeight",
            ("TrafficSplit", "negative"): "UnusableObject",
            ("HTTPRoute", "orphan"): "ParentNotFound",
        }
        with evidence.step("each is reported with an Event"):
            for (kind, name), reason in expected.items():

                def reported(kind: str = kind, name: str = name, reason: str = reason) -> bool:
                    found = events_for(source, ns, kind, name)
                    assert any(e.get("reason") == reason for e in found), (
                        f"{kind} {name}: Events so far "
                        f"{[(e.get('reason'), e.get('message')) for e in found]}"
                    )
                    return True

                eventually(
                    f"[{SOURCE}] a {reason} Event on {kind} {ns}/{name}",
                    reported,
                    TIMEOUTS.split_settle + TIMEOUTS.mirror_sync,
                )
                evidence.record(
                    "event",
                    [
                        {
                            "kind": kind,
                            "name": name,
                            "reason": e.get("reason"),
                            "message": e.get("message"),
                        }
                        for e in events_for(source, ns, kind, name)
                    ],
                )
        with evidence.step("the apex is still routed directly, without failures"):
            routes_to(site, {SOURCE}, "with only bad split objects present")
            result = site.client.run(site.url, 40, concurrency=4, timeout=5, label="untouched")
            assert statuses(result) == {"200": 40}, f"expected 40 x 200; saw {statuses(result)}"
            assert set(tally(result)) == {SOURCE}, f"expected only {SOURCE}; saw {tally(result)}"
    finally:
        for api, name in made:
            delete(source, api, name)


#: the shift test's steady load: open loop at this rate (requests per second)...
RATE = 20.0
#: ...for this long per step of the shift...
STEP_SECONDS = 15.0
#: ...through these (local, remote) weights, in order.
SHIFTS = ((0, 100), (50, 50), (100, 0))
#: requests in flight at most (the client falls behind the schedule only beyond this).
IN_FLIGHT = 16
#: a request due at i / RATE after the load was asked for is sent up to this much later
#: (the call reaching the client), so step windows end this long before the next change.
SCHEDULE_SLACK = 1.0


def _changed_at(records: list[dict[str, Any]], since: float, old: set[str], new: set[str]) -> float:
    """Seconds after ``since`` until answers stopped needing the old weights: the last
    answer only ``old`` allowed (a backend losing all weight) or the first only ``new``
    allowed (a backend gaining weight), whichever is later; 0 if none."""
    later = [(r["i"] / RATE - since, responder_cluster(r)) for r in records]
    later = [(t, who) for t, who in later if t >= 0]
    lost, gained = old - new, new - old
    last_lost = max((t for t, who in later if who in lost), default=0.0)
    first_gained = min((t for t, who in later if who in gained), default=0.0)
    return max(last_lost, first_gained)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="split-shift-under-load",
    description=f"Under steady load ({RATE:g} requests/s, {STEP_SECONDS:g} s per step) the "
    "TrafficSplit weights local/remote go 0/100 -> 50/50 -> 100/0: no request fails; "
    f"after each change requests follow the new weights within TIMEOUTS.split_settle; in "
    "each step's settled window a 0-weight backend gets no request and the 50/50 share "
    f"passes a two-sided exact binomial test at alpha={ALPHA} (CONF-41)",
    features=["multicluster", "multicluster-gateway", "traffic-split"],
    profile="multicluster",
    conf=["CONF-41"],
)
def test_shifting_weights_under_load_fails_no_request(site: SplitSite, evidence: Evidence) -> None:
    ns, source, name = site.namespace, site.source, "shift"
    settle = TIMEOUTS.split_settle
    first_local, first_remote = SHIFTS[0]
    obj = manifest(
        "trafficsplit-v1alpha2.yaml",
        name=name,
        apex=APEX,
        local=LOCAL,
        remote=REMOTE,
        local_weight=first_local,
        remote_weight=first_remote,
    )
    count = int(RATE * STEP_SECONDS * len(SHIFTS))
    out: dict[str, Any] = {}

    def load() -> None:
        try:
            out["result"] = site.client.run(
                site.url, count, rate=RATE, concurrency=IN_FLIGHT, timeout=5, label="shift load"
            )
        except BaseException as e:  # surfaced after join
            out["error"] = e

    try:
        with evidence.step("split 0/100 in effect"):
            create(source, split_api(ns), obj)
            routes_to(site, {TARGET}, "the 0/100 split")
        shifted_at = [0.0]
        with evidence.step(f"steady load, {len(SHIFTS)} steps of {STEP_SECONDS:g} s"):
            worker = threading.Thread(target=load, name="shift-load")
            started = time.monotonic()
            worker.start()
            for step, (local_w, remote_w) in enumerate(SHIFTS[1:], start=1):
                # the load's schedule, not a readiness wait: each step lasts STEP_SECONDS
                time.sleep(max(0.0, started + step * STEP_SECONDS - time.monotonic()))
                patch(source, split_api(ns), name, backends(local_w, remote_w))
                shifted_at.append(time.monotonic() - started)
            worker.join(timeout=count / RATE + 5 * count / IN_FLIGHT + TIMEOUTS.http_call)
        assert not worker.is_alive(), "the load run did not finish"
        if "error" in out:
            raise out["error"]
        records: list[dict[str, Any]] = out["result"]["records"]
        seen = statuses(out["result"])
        failed = [
            {"due_s": round(r["i"] / RATE, 2), "status": r["status"], "error": r.get("error")}
            for r in records
            if r["status"] != 200
        ]
        evidence.record("shift failures", failed[:50])
        assert seen == {"200": count}, (
            f"CONF-41: expected all {count} requests to succeed while the weights shifted at "
            f"{[round(t, 1) for t in shifted_at]} s; saw {seen}; failed (due time): {failed[:10]}"
        )
        settled: list[float] = []
        failures: list[str] = []
        for step, (local_w, remote_w) in enumerate(SHIFTS):
            start = shifted_at[step]
            end = shifted_at[step + 1] if step + 1 < len(SHIFTS) else count / RATE
            weights = {SOURCE: float(local_w), TARGET: float(remote_w)}
            if step:
                before = dict(zip((SOURCE, TARGET), SHIFTS[step - 1], strict=True))
                old = {c for c, w in before.items() if w}
                new = {c for c, w in weights.items() if w}
                took = _changed_at(records, start, old, new)
                settled.append(round(took, 3))
                if took > settle:
                    failures.append(
                        f"requests followed {local_w}/{remote_w} only {took:.2f} s after the "
                        f"change at {start:.1f} s (allowed {settle:g} s)"
                    )
            # requests are sent up to SCHEDULE_SLACK after their due time i / RATE
            window = [r for r in records if start + settle <= r["i"] / RATE < end - SCHEDULE_SLACK]
            counts = {SOURCE: 0, TARGET: 0}
            for r in window:
                counts[responder_cluster(r)] = counts.get(responder_cluster(r), 0) + 1
            verdict = judge(counts, weights)
            label = f"step {step + 1}: {local_w}/{remote_w}"
            span = f"[{start + settle:.1f}, {end - SCHEDULE_SLACK:.1f}) s"
            record_share(evidence, f"{label} ({span})", weights, counts, verdict)
            if not verdict.holds:
                stray_at = [
                    round(r["i"] / RATE, 2)
                    for r in window
                    if weights.get(responder_cluster(r), 0) == 0
                ]
                failures.append(
                    f"{label}, settled window {span}: {verdict.describe()}; requests to "
                    f"weight-0 backends due at {stray_at[:10]} s"
                )
        evidence.record("shift settle seconds", {"changes_at": shifted_at, "settled": settled})
        assert not failures, "CONF-41: " + "; ".join(failures)
    finally:
        delete(source, split_api(ns), name)
    routes_to(site, {SOURCE}, "the shift split deleted")


def _answered_by(client: LoadClient, url: str, evidence: Evidence, label: str) -> dict[str, int]:
    result = client.run(url, SAMPLE, concurrency=4, timeout=5, label=label)
    seen = statuses(result)
    assert seen == {"200": SAMPLE}, f"{label}: expected {SAMPLE} x 200; saw {seen}"
    return dict(tally(result))


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="split-linked-both-ways",
    description="Seed 004's shape: the clusters linked both ways at once, the same Service "
    "name in both, each side with the mirror of the other's; a 50/50 TrafficSplit on the "
    "source side alone divides the source's requests between both clusters (two-sided "
    f"exact binomial test at alpha={ALPHA}) while the target's clients still reach their "
    "local Service directly and the source's through the reverse mirror; then a split on "
    "the target side too divides its requests both ways as well (CONF-39)",
    features=["multicluster", "multicluster-gateway", "traffic-split"],
    profile="multicluster",
    conf=["CONF-39"],
)
def test_linked_both_ways_with_a_split_on_each_side(site: SplitSite, evidence: Evidence) -> None:
    linked, ns, source = site.linked, site.namespace, site.source
    target = linked.kube[TARGET]
    reverse = private_name("back")
    back_mirror = f"{LOCAL}-{reverse}"
    weights = {SOURCE: 50.0, TARGET: 50.0}
    made: list[tuple[Kube, str, str]] = []
    source.client.patch(
        Service, LOCAL, {"metadata": {"labels": {LINK_LABEL: reverse}}}, namespace=ns
    )
    try:
        with private_link(linked, reverse, f"{LINK_LABEL}={reverse}", source=TARGET, target=SOURCE):
            with evidence.step(f"reverse link {reverse}: {TARGET} mirrors {SOURCE}"):
                mirror(linked, TARGET, ns, back_mirror)
                there = Workloads(linked.kube, ns, evidence).client(TARGET, name="client-back")
                domain = linked.clusters[TARGET].domain
                local_url = f"http://{LOCAL}.{ns}.svc.{domain}:8080/"
                back_url = f"http://{back_mirror}.{ns}.svc.{domain}:8080/"
            split = manifest(
                "trafficsplit-v1alpha2.yaml",
                name="one-side",
                apex=APEX,
                local=LOCAL,
                remote=REMOTE,
                local_weight=50,
                remote_weight=50,
            )
            with evidence.step("split on the source side only"):
                create(source, split_api(ns), split)
                made.append((source, split_api(ns), "one-side"))
                _split_takes_effect(site, f"[{SOURCE}] the split reaches {TARGET}")
                counts = _answered_by(site.client, site.url, evidence, f"{SOURCE} apex")
                verdict = judge(counts, weights)
                record_share(evidence, f"{SOURCE}: split 50/50", weights, counts, verdict)
                assert verdict.holds, f"[{SOURCE}] split 50/50: {verdict.describe()}"
                converge_there = _answered_by(there, local_url, evidence, f"{TARGET} local")
                assert set(converge_there) == {TARGET}, (
                    f"[{TARGET}] expected its own {LOCAL} (no split on this side) to answer "
                    f"every request; saw {converge_there}"
                )
                via_back = _answered_by(there, back_url, evidence, f"{TARGET} -> {back_mirror}")
                assert set(via_back) == {SOURCE}, (
                    f"[{TARGET}] expected {back_mirror} (the reverse mirror) to reach "
                    f"{SOURCE} only; saw {via_back}"
                )
            back_split = manifest(
                "trafficsplit-v1alpha2.yaml",
                name="other-side",
                apex=APEX,
                local=LOCAL,
                remote=back_mirror,
                local_weight=50,
                remote_weight=50,
            )
            with evidence.step("split on the target side too"):
                create(target, split_api(ns), back_split)
                made.append((target, split_api(ns), "other-side"))

                def both() -> bool:
                    seen = tally(there.run(local_url, 10, concurrency=2, timeout=3))
                    assert SOURCE in seen, f"[{TARGET}] answers so far: {dict(seen)}"
                    return True

                eventually(f"[{TARGET}] the split reaches {SOURCE}", both, TIMEOUTS.convergence)
                counts = _answered_by(there, local_url, evidence, f"{TARGET} apex")
                verdict = judge(counts, weights)
                record_share(evidence, f"{TARGET}: split 50/50", weights, counts, verdict)
                assert verdict.holds, f"[{TARGET}] split 50/50: {verdict.describe()}"
    finally:
        for kube, api, name in made:
            delete(kube, api, name)
        source.client.patch(
            Service, LOCAL, {"metadata": {"labels": {LINK_LABEL: None}}}, namespace=ns
        )
    routes_to(site, {SOURCE}, "both splits deleted")
