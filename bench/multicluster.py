"""``python -m bench.multicluster``: gateway mode against pod-to-pod (remote discovery),
measured on real clusters (netns provider, a flat two-cluster topology).

    python -m bench.multicluster --state-dir DIR --topology /tmp/x/two-flat.yaml
                                 [--rates 100,500] [--seconds 10] [--scale-ups 5] [--keep]

Uses the clusters of ``--state-dir`` when a run kept them there (``pytest ...
--keep-clusters``), else brings ``--topology`` up (and down afterwards unless ``--keep``);
installs the mesh, the multicluster extension and the link (source mirrors target)
unless that state dir already has them. Then one meshed server in the target behind two
Services, ``server`` exported in gateway mode and ``p2p`` exported in remote-discovery
mode, and one meshed load client in the source, and prints:

- latency p50/p99 of client -> ``server-target`` (through the target's gateway) and
  client -> ``p2p-target`` (pod to pod) at each rate, in the same run, and the ratio
  gateway/pod-to-pod (seed 002 claims pod to pod is faster);
- discovery latency: a target server pod scaled up, from its address being ready in the
  target's EndpointSlice to the first answer from it through the source client's proxy
  (p50 and max over ``--scale-ups``; target p50 <= 1 s).

Figures are printed, not judged: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.discovery_v1 import EndpointSlice

from bench.mesh import CONTROL_PORT, MANIFESTS, PACED_CONCURRENCY, _fmt, _print, clusters
from fixtures.mesh import Mesh
from fixtures.multicluster import ensure_linked
from harness.adapters import get_adapter, state
from harness.adapters.multicluster import MulticlusterAdapter
from harness.kube import Kube, wait_for
from harness.providers.netns.provider import STATE_ROOT

NS = "mc-bench"
SOURCE, TARGET = "source", "target"
TARGETS = {"discovery_p50_s": 1.0}
#: longest wait for a mirror, an mTLS answer, a scaled pod or its endpoint to show up.
READY_TIMEOUT = 120.0
#: requests per probe while waiting for the new pod to answer, and their concurrency.
PROBE_REQUESTS = 12
PROBE_CONCURRENCY = 3
#: requests of the closed-loop run (one in flight: each request's own cost, no queueing).
SERIAL_REQUESTS = 300
REQUEST_TIMEOUT = 5.0
#: a paced run may take this many times its planned length on a loaded machine.
RUN_SLOWDOWN = 6.0
CALL_SLACK = 60.0
P2P_SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: p2p
  labels: {app: server}
spec:
  selector: {app: server}
  ports:
  - {name: http, port: 8080, targetPort: http}
"""


def _deploy(mesh: Mesh, adapter: MulticlusterAdapter) -> None:
    for k in mesh.kube.values():
        k.delete_namespace(NS, wait=True)
        k.create_namespace(NS)
        mesh.adapter.mesh_namespace(k, NS)
    target, source = mesh.kube[TARGET], mesh.kube[SOURCE]
    target.apply(
        (MANIFESTS / "mesh-server.yaml").read_text(),
        namespace=NS,
        name="server",
        replicas="1",
        cluster=TARGET,
    )
    target.apply(P2P_SERVICE, namespace=NS)
    source.apply(
        (MANIFESTS / "testapp-client.yaml").read_text(), namespace=NS, name="client", cluster=SOURCE
    )
    target.wait_deployment_ready("server", NS)
    source.wait_pod_ready("client", NS)
    adapter.export(target, NS, "server", "true")
    adapter.export(target, NS, "p2p", "remote-discovery")


def run(k: Kube, url: str, count: int, rate: float, concurrency: int) -> dict[str, Any]:
    """One load run of the source client; its summary."""
    body = {
        "url": url,
        "count": count,
        "rate": rate,
        "concurrency": concurrency,
        "timeout": REQUEST_TIMEOUT,
    }
    planned = count / rate if rate else count * REQUEST_TIMEOUT / concurrency
    budget = planned * RUN_SLOWDOWN + CALL_SLACK
    r = k.pod_proxy(NS, "client", CONTROL_PORT, "/run", "POST", body, timeout=budget)
    if r.status_code != 200:
        raise RuntimeError(f"/run answered {r.status_code}: {r.text[:300]}")
    return cast(dict[str, Any], r.json()["summary"])


def _answers(k: Kube, url: str, count: int, concurrency: int) -> list[dict[str, Any]]:
    body = {"url": url, "count": count, "concurrency": concurrency, "timeout": 5}
    r = k.pod_proxy(NS, "client", CONTROL_PORT, "/run", "POST", body)
    return cast(list[dict[str, Any]], r.json()["records"]) if r.status_code == 200 else []


def _wait_mtls(k: Kube, url: str) -> None:
    def secured() -> bool | None:
        records = _answers(k, url, 10, 1)
        ok = records and all(
            x["status"] == 200 and (x.get("responder") or {}).get("client_id") for x in records
        )
        return True if ok else None

    wait_for(f"mTLS answers from {url}", secured, READY_TIMEOUT)


def _ready_ips(k: Kube, service: str) -> set[str]:
    ips: set[str] = set()
    for s in k.client.list(
        EndpointSlice, namespace=NS, labels={"kubernetes.io/service-name": service}
    ):
        for e in s.endpoints or []:
            if e.conditions is None or e.conditions.ready:
                ips.update(e.addresses or [])
    return ips


def _pods(k: Kube) -> dict[str, str]:
    out = {}
    for p in k.pods(NS, {"app": "server"}):
        if p.metadata and p.metadata.name and p.status and p.status.podIP:
            out[p.metadata.name] = p.status.podIP
    return out


def _scale(k: Kube, replicas: int) -> None:
    k.client.patch(Deployment, "server", {"spec": {"replicas": replicas}}, namespace=NS)


def _discovery_latency(mesh: Mesh, url: str) -> tuple[float, float]:
    """(endpoint ready -> first answer through the client's proxy, scale call -> that answer)."""
    target, source = mesh.kube[TARGET], mesh.kube[SOURCE]
    before = _pods(target)
    asked = time.monotonic()
    _scale(target, 2)
    new = wait_for(
        "a new server pod with an IP",
        lambda: next(((n, ip) for n, ip in _pods(target).items() if n not in before), None),
        READY_TIMEOUT,
        interval=0.05,
    )
    name, ip = new
    wait_for(
        f"{ip} ready in the p2p EndpointSlice",
        lambda: True if ip in _ready_ips(target, "p2p") else None,
        READY_TIMEOUT,
        interval=0.05,
    )
    ready = time.monotonic()

    def answered() -> bool | None:
        records = _answers(source, url, PROBE_REQUESTS, PROBE_CONCURRENCY)
        return True if any((r.get("responder") or {}).get("pod") == name for r in records) else None

    wait_for(
        f"an answer from {name} through the client's proxy", answered, READY_TIMEOUT, interval=0
    )
    seen = time.monotonic()
    _scale(target, 1)
    target.wait_deployment_ready("server", NS, timeout=READY_TIMEOUT)
    wait_for(
        "the scaled-down pod gone from the p2p EndpointSlice",
        lambda: True if len(_ready_ips(target, "p2p")) == 1 else None,
        READY_TIMEOUT,
    )
    return seen - ready, seen - asked


def _bench(
    mesh: Mesh, adapter: MulticlusterAdapter, rates: list[float], seconds: float, n: int
) -> None:
    _deploy(mesh, adapter)
    source = mesh.kube[SOURCE]
    domain = mesh.clusters[SOURCE].domain
    urls = {
        "gateway": f"http://server-{TARGET}.{NS}.svc.{domain}:8080/",
        "pod-to-pod": f"http://p2p-{TARGET}.{NS}.svc.{domain}:8080/",
    }
    for url in urls.values():
        _wait_mtls(source, url)
        run(source, url, 200, 0, 8)  # warm connections and discovery
    _print(f"# {mesh.adapter.name}: {SOURCE} client -> mirror -> {TARGET} server, same run")
    _print(f"\n# closed loop: {SERIAL_REQUESTS} requests, one in flight")
    serial = {}
    for mode, url in urls.items():
        s = run(source, url, SERIAL_REQUESTS, 0, 1)
        serial[mode] = s
        _print(f"serial   {mode:<10} {_fmt(s, SERIAL_REQUESTS)}")
    if serial["pod-to-pod"]["p50_ms"] and serial["pod-to-pod"]["p99_ms"]:
        _print(
            f"serial   ratio gateway/pod-to-pod: p50 "
            f"{serial['gateway']['p50_ms'] / serial['pod-to-pod']['p50_ms']:.2f}x  p99 "
            f"{serial['gateway']['p99_ms'] / serial['pod-to-pod']['p99_ms']:.2f}x"
        )
    _print("\n# latency at a fixed rate (open loop)")
    for rate in rates:
        count = int(rate * seconds)
        p50s, p99s = {}, {}
        for mode, url in urls.items():
            s = run(source, url, count, rate, PACED_CONCURRENCY)
            p50s[mode], p99s[mode] = s["p50_ms"] or 0.0, s["p99_ms"] or 0.0
            _print(f"{rate:6.0f}/s  {mode:<10} {_fmt(s, count)}")
        if p50s["pod-to-pod"] and p99s["pod-to-pod"]:
            _print(
                f"{rate:6.0f}/s  ratio gateway/pod-to-pod: p50 "
                f"{p50s['gateway'] / p50s['pod-to-pod']:.2f}x  p99 "
                f"{p99s['gateway'] / p99s['pod-to-pod']:.2f}x"
            )
    _print(f"\n# discovery latency over {n} scale-ups (remote pod ready -> answer via the proxy)")
    from_ready, from_scale = [], []
    for _ in range(n):
        a, b = _discovery_latency(mesh, urls["pod-to-pod"])
        from_ready.append(a)
        from_scale.append(b)
    p50 = statistics.median(from_ready)
    limit = TARGETS["discovery_p50_s"]
    _print(
        f"endpoint ready -> in client proxy  p50 {p50:6.3f} s  max {max(from_ready):6.3f} s  "
        f"(target p50 <= {limit:g} s: {'met' if p50 <= limit else 'MISSED'})"
    )
    _print(
        f"scale call -> in client proxy      p50 {statistics.median(from_scale):6.3f} s  "
        f"max {max(from_scale):6.3f} s"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.multicluster", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--state-dir", type=Path, default=STATE_ROOT / "mc-bench")
    p.add_argument("--topology", default="two-flat", help="a flat two-cluster topology")
    p.add_argument("--rates", default="100,500", help="comma-separated requests/s")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each paced run")
    p.add_argument("--scale-ups", type=int, default=5, help="discovery-latency samples")
    p.add_argument("--keep", action="store_true", help="keep clusters this command brought up")
    p.add_argument("--mesh", default=os.environ.get("ISTHMUS_MESH", "isthmus"))
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench.multicluster needs root (the netns provider)")
    rates = [float(r) for r in args.rates.split(",") if r]
    workdir = args.state_dir / "mesh"
    adapter = get_adapter(args.mesh, workdir, image_tag="dev")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    with clusters(args.state_dir, args.topology, args.keep) as found:
        trust = state.ensure_installed(adapter, found, workdir, run_id)
        kube = {c.name: Kube.connect(c) for c in found}
        mesh = Mesh(adapter, trust, {c.name: c for c in found}, kube)
        try:
            ensure_linked(mesh, workdir, run_id)
            _bench(mesh, cast(MulticlusterAdapter, adapter), rates, args.seconds, args.scale_ups)
        finally:
            for k in kube.values():
                k.delete_namespace(NS, wait=False)
                k.close()


if __name__ == "__main__":
    main()
