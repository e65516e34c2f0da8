"""Substrate: images of the catalogue run the real programs their users call.

Each image runs what the kubelet's catalogue says (README, "Images"): podinfo built
from its upstream module, Debian's tools behind busybox/alpine/curl/netshoot/nginx at
the paths those images have them, and the project's bb and slow_cooker behind Buoyant's
images. An image outside the catalogue fails its pod with a reason and an Event.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lightkube.resources.core_v1 import Event, Pod

from fixtures.workloads import Workloads
from harness.kube import Kube, wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS

MANIFESTS = Path(__file__).parents[2] / "fixtures" / "manifests" / "images"
CLUSTER = "target"


def _run_tool(
    k: Kube, ns: str, name: str, image: str, command: list[str] | None, args: list[str]
) -> tuple[str, str]:
    """Run one pod to completion; return (phase, log)."""
    k.apply(
        (MANIFESTS / "tool-pod.yaml").read_text(),
        namespace=ns,
        name=name,
        image=image,
        command=json.dumps(command) if command else "null",
        args=json.dumps(args),
    )

    def finished() -> str | None:
        pod = k.client.get(Pod, name, namespace=ns)
        phase = pod.status.phase if pod.status else None
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(
        f"[{k.name}] pod {ns}/{name} ({image}) to finish",
        finished,
        TIMEOUTS.workload_output,
        lambda: k.describe_pods(ns),
    )
    r = k.http.get(f"/api/v1/namespaces/{ns}/pods/{name}/log", timeout=TIMEOUTS.http_call)
    return phase, r.text


@pytest.mark.conformance(
    short_name="images-network-tools",
    description="busybox, alpine, curlimages/curl and nicolaka/netshoot run Debian's sh, "
    "curl, nslookup, dig, nc and socat as their users call them (SUB-4)",
    features=[],
    profile="substrate",
    conf=["SUB-4"],
)
def test_tool_images_run_the_tools_users_call(
    kube: dict[str, Kube], workloads: Workloads, namespace: str, evidence: Evidence
) -> None:
    k = kube[CLUSTER]
    workloads.server(CLUSTER, replicas=1)
    fqdn = f"server.{namespace}.svc.{k.cluster.domain}"
    cases = [
        (
            "busybox",
            "busybox:1.36",
            ["sh", "-c"],
            [
                f"nslookup {fqdn} && nc -z -w 5 server 8080 && echo nc-ok && busybox true && "
                "echo busybox-ok"
            ],
            [f"Name:\t{fqdn}", "nc-ok", "busybox-ok"],
        ),
        # alpine has no entry point: args alone replace its /bin/sh
        ("alpine", "alpine:3.20", None, ["/bin/sh", "-c", "echo alpine-sh-ok"], ["alpine-sh-ok"]),
        ("curl", "curlimages/curl:8.10.1", None, ["-sS", "http://server:8080/"], ['"pod"']),
        (
            "netshoot",
            "nicolaka/netshoot",
            ["sh", "-c"],
            [
                f"dig +short {fqdn} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | "
                "socat -t 10 - TCP:server:8080,shut-none"
            ],
            ["200 OK", "\r\n\r\nok"],
        ),
    ]
    for name, image, command, args, expected in cases:
        phase, log = _run_tool(k, namespace, name, image, command, args)
        evidence.record("log", {"pod": name, "image": image, "text": log[-3000:]})
        assert phase == "Succeeded", f"expected {image} to run {command or ''} {args}: {log}"
        for text in expected:
            assert text in log, f"expected {text!r} in the output of {image}: {log}"


@pytest.mark.conformance(
    short_name="images-nginx-conf-d",
    description="nginx runs Debian's nginx with the image's layout: a conf.d from a "
    "ConfigMap is served, so is the default page (SUB-4)",
    features=[],
    profile="substrate",
    conf=["SUB-4"],
)
def test_nginx_serves_a_configmap_conf_d(kube: dict[str, Kube], namespace: str) -> None:
    k = kube[CLUSTER]
    k.apply((MANIFESTS / "nginx.yaml").read_text(), namespace=namespace)
    k.wait_pod_ready("nginx", namespace)
    r = k.pod_proxy(namespace, "nginx", 8080, "/")
    assert (r.status_code, r.text) == (200, "conf.d from a ConfigMap\n"), (
        f"expected nginx to serve the ConfigMap's server on 8080, saw {r.status_code}: {r.text}"
    )
    r = k.pod_proxy(namespace, "nginx", 80, "/")
    assert r.status_code == 200, f"expected nginx's default page on 80: {r.status_code} {r.text}"
    assert "Welcome to nginx!" in r.text, r.text
    assert r.headers.get("server", "").startswith("nginx"), dict(r.headers)


@pytest.mark.conformance(
    short_name="images-podinfo",
    description="stefanprodan/podinfo runs podinfo built from its upstream module with the "
    "image's command and working dir; podcli answers exec probes (SUB-4)",
    features=[],
    profile="substrate",
    conf=["SUB-4"],
)
def test_podinfo_runs_as_its_image_does(kube: dict[str, Kube], namespace: str) -> None:
    k = kube[CLUSTER]
    k.apply((MANIFESTS / "podinfo.yaml").read_text(), namespace=namespace, cluster=CLUSTER)
    k.wait_pod_ready("podinfo", namespace)
    r = k.pod_proxy(namespace, "podinfo", 9898, "/")
    assert r.status_code == 200, f"expected podinfo on 9898: {r.status_code} {r.text}"
    info = r.json()
    assert info.get("message") == f"greetings from {CLUSTER}", info
    assert info.get("version") == "6.9.2", f"expected the pinned podinfo 6.9.2: {info}"
    assert info.get("hostname") == "podinfo", info
    r = k.pod_proxy(namespace, "podinfo", 9898, "/healthz")
    assert r.status_code == 200, r.text


#: waiting reasons of a container still being set up.
STARTING = ("ContainerCreating", "PodInitializing")

#: slow_cooker's interval line: time good/bad/failed target goal% interval ...
REPORT = re.compile(r"^\S+T\S+\s+(\d+)/(\d+)/(\d+) (\d+)\s+(\d+)% 3s ", re.M)


@pytest.mark.conformance(
    short_name="images-bb-slow-cooker",
    description="buoyantio/bb and buoyantio/slow_cooker take their upstream arguments: "
    "slow_cooker loads bb at --qps x --concurrency and reports every interval; bb "
    "answers its JSON and logs as bb does (SUB-5)",
    features=[],
    profile="substrate",
    conf=["SUB-5"],
)
def test_slow_cooker_loads_bb(kube: dict[str, Kube], namespace: str, evidence: Evidence) -> None:
    k = kube[CLUSTER]
    k.apply((MANIFESTS / "bb-slow-cooker.yaml").read_text(), namespace=namespace)
    k.wait_pod_ready("bb", namespace)
    r = k.pod_proxy(namespace, "bb", 8080, "/")
    assert r.status_code == 200, r.text
    assert r.json().get("payload") == "hello\n", r.text
    assert r.headers.get("content-type") == "text/plain; charset=utf-8", dict(r.headers)

    def log(pod: str) -> str:
        return k.http.get(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log", timeout=TIMEOUTS.http_call
        ).text

    text = wait_for(
        "slow_cooker's third report line",
        lambda: t if len(REPORT.findall(t := log("slow-cooker"))) >= 3 else None,
        TIMEOUTS.workload_output,
        lambda: log("slow-cooker")[-1500:],
        interval=1,
    )
    evidence.record("log", {"pod": "slow-cooker", "text": text[-3000:]})
    assert "# sending 20 GET req/s with concurrency=2 to http://bb:8080/ ..." in text, text
    for good, bad, failed, target, _ in REPORT.findall(text)[1:]:
        assert int(target) == 60, f"expected slow_cooker's goal of 20/s x 3 s: {text}"
        assert (bad, failed) == ("0", "0"), f"expected no errors from bb: {text}"
        assert int(good) >= 30, (
            f"expected most of 60 requests per 3 s answered 200 by bb, saw "
            f"{good}/{bad}/{failed}: {text}"
        )
    bb_log = log("bb")
    assert re.search(
        r'^time="\S+" level=info msg="HTTP 1.1 server listening on port \[8080\]"$', bb_log, re.M
    ), bb_log[-1500:]


@pytest.mark.conformance(
    short_name="images-unknown-refused",
    description="An image outside the catalogue is not replaced by anything: its container "
    "waits with reason ImageNotRunnable and a Failed event says which images run (SUB-4)",
    features=[],
    profile="substrate",
    conf=["SUB-4"],
)
def test_unknown_image_fails_with_a_reason_and_an_event(
    kube: dict[str, Kube], namespace: str
) -> None:
    k = kube[CLUSTER]
    k.apply(
        (MANIFESTS / "tool-pod.yaml").read_text(),
        namespace=namespace,
        name="redis",
        image="redis:7",
        command="null",
        args="[]",
    )

    def waiting_reason() -> str | None:
        pod = k.client.get(Pod, "redis", namespace=namespace)
        for c in (pod.status.containerStatuses or []) if pod.status else []:
            waiting = c.state.waiting if c.state else None
            if waiting and waiting.reason and waiting.reason not in STARTING:
                return waiting.reason
        return None

    reason = wait_for(
        "redis's waiting reason once set up", waiting_reason, TIMEOUTS.workload_output
    )
    assert reason == "ImageNotRunnable", f"expected ImageNotRunnable, saw {reason}"
    events = wait_for(
        "a Failed event for redis",
        lambda: (
            [
                e
                for e in k.client.list(Event, namespace=namespace)
                if e.reason == "Failed" and "redis:7" in (e.message or "")
            ]
            or None
        ),
        TIMEOUTS.workload_output,
    )
    assert "stefanprodan/podinfo[:tag]" in (events[0].message or ""), events[0].message
