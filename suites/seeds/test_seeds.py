"""Seeds: the seeds' own manifests apply unchanged and their workloads come up and answer.

Seed 000's bb and slow-cookers, seed 001's podinfo/frontend test services (west on
``source``, east on ``target``) and seed 004's podinfo and TrafficSplit (workload1 on
``source``). The manifests are applied as the guides apply them (``kubectl apply``,
through the mesh's ``inject`` where the guide pipes them through ``linkerd inject``),
with the mesh installed because they carry its annotations. What needs the
multicluster link (``bb-target``, ``podinfo-east``, ``podinfo-workload2``) is not
asserted here; the slow_cookers aimed at those names must still run their load and
report every interval.
"""

from __future__ import annotations

import re

import pytest

from fixtures.seeds import Seeds
from harness.kube import Kube

#: slow_cooker's interval line: time good/bad/failed target goal% interval ...
REPORT = re.compile(r"^\S+T\S+\s+(\d+)/(\d+)/(\d+) (\d+)\s+(\d+)% (\S+) ", re.M)


def reports(log: str) -> list[tuple[int, int, int, int]]:
    """(good, bad, failed, target) of every report line of a slow_cooker log."""
    return [(int(g), int(b), int(f), int(t)) for g, b, f, t, *_ in REPORT.findall(log)]


def _two_reports(log: str) -> bool:
    return len(reports(log)) >= 2


def _ready(kube: Kube, namespace: str, *deployments: str) -> None:
    for d in deployments:
        kube.wait_deployment_ready(d, namespace)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="seed-000-bb-slow-cooker",
    description="Seed 000's bb, slow-cooker and slow-cooker-evil manifests apply unchanged "
    "(through inject), become Ready; bb answers as bb does and both slow_cookers send "
    "their 10 req/s and report every 10 s in slow_cooker's format (SUB-5, SUB-6)",
    features=["injection"],
    profile="substrate",
    conf=["SUB-5", "SUB-6"],
)
def test_seed_000_bb_and_slow_cookers(meshed_seeds: Seeds, kube: dict[str, Kube]) -> None:
    s = meshed_seeds
    with s.namespace("mc-demo") as ns:
        s.apply("target", "000-bb.yaml", inject=True)
        s.kubectl("source", "create", "ns", "mc-demo")
        s.apply("source", "000-slow-cooker.yaml", inject=True)
        s.apply("source", "000-slow-cooker-evil.yaml", inject=True)
        _ready(kube["target"], ns, "bb")
        _ready(kube["source"], ns, "slow-cooker", "slow-cooker-evil")

        bb = s.pod_of("target", ns, "bb")
        r = s.get("target", ns, bb, 8080, "/")
        assert r.status_code == 200, f"expected bb to answer 200, saw {r.status_code}: {r.text}"
        body = r.json()
        assert body.get("payload") == "hello\n", f"expected bb's payload 'hello\\n', saw {body}"
        assert str(body.get("requestUID", "")).startswith(
            "in:http-sid:terminus-grpc:-1-h1:8080-"
        ), f"expected bb's request UID shape, saw {body}"

        for app in ("slow-cooker", "slow-cooker-evil"):
            pod = s.pod_of("source", ns, app)
            log = s.wait_logs(
                "source", ns, pod, "slow-cooker", _two_reports, "two slow_cooker report lines"
            )
            assert "# sending 10 GET req/s with concurrency=1 to http://bb-target:8080 ..." in log
            for good, bad, failed, target in reports(log)[1:]:
                assert target == 100, f"expected slow_cooker's goal of 100 per 10 s: {log}"
                assert good + bad + failed >= 50, (
                    f"expected about 100 requests per 10 s interval from {app} (continuous "
                    f"load at --qps 10, answered or not), saw {good}/{bad}/{failed}: {log}"
                )


def _greeting(s: Seeds, cluster: str, ns: str, app: str, port: int) -> dict[str, object]:
    pod = s.pod_of(cluster, ns, app)
    r = s.get(cluster, ns, pod, port, "/")
    assert r.status_code == 200, (
        f"[{cluster}] expected {app} {pod}:{port}/ to answer 200, saw {r.status_code}: {r.text}"
    )
    body: dict[str, object] = r.json()
    return body


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="seed-001-test-services",
    description="Seed 001's podinfo/frontend test services (west, east) apply unchanged and "
    "become Ready; podinfo (built from its upstream module) greets with its cluster's name, "
    "directly and through the frontend's nginx and its ConfigMap'd nginx.conf; the "
    "frontend's slow_cooker loads podinfo (SUB-4, SUB-5, SUB-6)",
    features=["injection"],
    profile="substrate",
    conf=["SUB-4", "SUB-5", "SUB-6"],
)
def test_seed_001_podinfo_and_frontend(meshed_seeds: Seeds, kube: dict[str, Kube]) -> None:
    s = meshed_seeds
    with s.namespace("test") as ns:
        placement = {"west": "source", "east": "target"}
        for name, cluster in placement.items():
            s.apply(cluster, f"001-{name}.yaml")
        for name, cluster in placement.items():
            _ready(kube[cluster], ns, "podinfo", "frontend")
            direct = _greeting(s, cluster, ns, "podinfo", 9898)
            assert direct.get("message") == f"greetings from {name}", (
                f"[{cluster}] expected podinfo's greeting to name {name}, saw {direct}"
            )
            assert direct.get("version") == "6.9.2", f"expected the pinned podinfo: {direct}"
            via = _greeting(s, cluster, ns, "frontend", 8080)
            assert via.get("message") == f"greetings from {name}", (
                f"[{cluster}] expected the frontend's nginx to pass podinfo's greeting, saw {via}"
            )
            frontend = s.pod_of(cluster, ns, "frontend")
            log = s.wait_logs(
                cluster, ns, frontend, "internal", _two_reports, "two slow_cooker report lines"
            )
            assert "# sending 1 GET req/s with concurrency=1 to http://podinfo:9898 ..." in log
            good = [g for g, _, _, _ in reports(log)[1:]]
            assert all(g >= 5 for g in good), (
                f"[{cluster}] expected the internal slow_cooker's 1 req/s to podinfo answered "
                f"(about 10 good per 10 s), saw good counts {good}: {log}"
            )


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="seed-004-podinfo-trafficsplit",
    description="Seed 004's podinfo (workload1) and TrafficSplit apply unchanged; podinfo "
    "and the frontend become Ready and podinfo greets with workload1 (SUB-4, SUB-6)",
    features=["injection"],
    profile="substrate",
    conf=["SUB-4", "SUB-6"],
)
def test_seed_004_podinfo_and_traffic_split(meshed_seeds: Seeds, kube: dict[str, Kube]) -> None:
    s = meshed_seeds
    with s.namespace("test") as ns:
        s.apply("source", "004-workload1.yaml")
        _ready(kube["source"], ns, "podinfo", "frontend")
        s.apply("source", "004-split.yaml")
        split = s.kubectl("source", "get", "trafficsplit", "podinfo", "-n", ns, "-o", "name")
        assert split.strip() == "trafficsplit.split.smi-spec.io/podinfo", split
        body = _greeting(s, "source", ns, "podinfo", 9898)
        assert body.get("message") == "greetings from workload1", (
            f"expected podinfo's greeting to name workload1, saw {body}"
        )
