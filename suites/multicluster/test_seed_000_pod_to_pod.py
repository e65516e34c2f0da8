"""Seed 000, the pod-to-pod multicluster guide, step by step with its own names.

Step 1 (link target into source) is the session's ``linked`` fixture. Step 2 applies
``bb`` to the target through inject, creates ``mc-demo`` in the source and labels
``svc/bb`` ``mirror.linkerd.io/exported=remote-discovery``; ``bb-target`` appears in
the source. Step 3 runs ``slow-cooker`` at 10 req/s against ``bb-target:8080`` and
checks, where the guide reads ``viz stat``, the proxies' own counters: slow-cooker's
reports are all good, bb's proxy counts slow-cooker's identity over mTLS at that rate,
and the target gateway forwards (almost) none of it. Step 4 (authorization policy and
``slow-cooker-evil``) is left to the policy suites, which own policy assertions.
Needs a flat network.
"""

from __future__ import annotations

import re

import pytest

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.seeds import Seeds
from harness.adapters.promtext import Metrics
from suites.multicluster._support import eventually, gateway_pod, mirror

SOURCE, TARGET, NS = "source", "target", "mc-demo"
#: slow_cooker's interval line: time good/bad/failed target goal% interval ...
REPORT = re.compile(r"^\S+T\S+\s+(\d+)/(\d+)/(\d+) (\d+)\s+(\d+)% (\S+) ", re.M)
#: clean 10 s intervals of slow_cooker wanted after its first (warm-up) one.
CLEAN_INTERVALS = 2
GATEWAY_SHARE = 0.05


def _reports(log: str) -> list[tuple[int, int, int]]:
    return [(int(g), int(b), int(f)) for g, b, f, *_ in REPORT.findall(log)]


@pytest.mark.requires(clusters=2, network="flat")
@pytest.mark.conformance(
    short_name="seed-000-pod-to-pod",
    description="Seed 000 step by step: bb in the target exported with "
    "mirror.linkerd.io/exported=remote-discovery becomes bb-target in the source, "
    "labelled for remote discovery and without Endpoints; slow-cooker's 10 req/s to "
    "bb-target:8080 all succeed, reach bb pod to pod with slow-cooker's own identity over "
    "mTLS, and the target gateway forwards almost none of them "
    "(CONF-21, CONF-24, CONF-25, CONF-33)",
    features=["multicluster", "remote-discovery", "injection", "mtls", "proxy-metrics"],
    profile="multicluster",
    conf=["CONF-21", "CONF-24", "CONF-25", "CONF-33"],
)
def test_seed_000_pod_to_pod_guide(meshed_seeds: Seeds, linked: Linked) -> None:
    s, mesh = meshed_seeds, linked.mesh
    with s.namespace(NS):
        with s.evidence.step("step 2: deploy bb in target and export it (remote-discovery)"):
            s.apply(TARGET, "000-bb.yaml", inject=True)
            s.kubectl(SOURCE, "create", "ns", NS)
            s.kubectl(
                TARGET, "-n", NS, "label", "svc/bb", "mirror.linkerd.io/exported=remote-discovery"
            )
            svc = mirror(linked, SOURCE, NS, "bb-target")
        labels = svc["metadata"].get("labels") or {}
        assert labels.get("multicluster.linkerd.io/remote-discovery") == TARGET, (
            f"CONF-21: expected bb-target labelled remote-discovery={TARGET}; it has {labels}"
        )
        s.kubectl(TARGET, "-n", NS, "rollout", "status", "deploy/bb", "--timeout=120s")
        bb = s.pod_of(TARGET, NS, "bb")
        bb_id = mesh.identity(TARGET, NS, "default")
        cooker_id = mesh.identity(SOURCE, NS, "slow-cooker")

        def gateway() -> Metrics:
            return mesh.metrics(TARGET, MC_NAMESPACE, gateway_pod(linked, TARGET))

        def at_bb() -> float:
            return mesh.metrics(TARGET, NS, bb).sum(
                "request_total", direction="inbound", tls="true", client_id=cooker_id
            )

        gateway_before = gateway().sum("request_total", server_id=bb_id)
        bb_before = at_bb()

        with s.evidence.step("step 3: send traffic with slow-cooker to bb-target:8080"):
            s.apply(SOURCE, "000-slow-cooker.yaml", inject=True)
            s.kubectl(SOURCE, "-n", NS, "rollout", "status", "deploy/slow-cooker", "--timeout=120s")
            cooker = s.pod_of(SOURCE, NS, "slow-cooker")
            log = s.wait_logs(
                SOURCE,
                NS,
                cooker,
                "slow-cooker",
                lambda text: len(_reports(text)) > CLEAN_INTERVALS,
                f"{CLEAN_INTERVALS + 1} slow_cooker reports",
            )
        for good, bad, failed in _reports(log)[1:]:
            assert bad == 0, f"expected every request to bb-target to succeed: {log}"
            assert failed == 0, f"expected every request to bb-target to succeed: {log}"
            assert good >= 50, f"expected about 100 good requests per 10 s interval: {log}"

        def bb_counted() -> float:
            got = at_bb() - bb_before
            assert got >= 100, f"bb's proxy counted {got} mTLS requests from {cooker_id}"
            return got

        received = eventually(f"[{TARGET}] bb sees slow-cooker's identity", bb_counted)
        forwarded = gateway().sum("request_total", server_id=bb_id) - gateway_before
        s.evidence.record(
            "counts",
            {"bb_from_slow_cooker": received, "gateway_to_bb": forwarded, "client_id": cooker_id},
        )
        assert forwarded <= GATEWAY_SHARE * received, (
            f"CONF-24: expected the target gateway to forward almost none of slow-cooker's "
            f"traffic; it forwarded {forwarded} while bb received {received} pod to pod"
        )
