"""``python -m bench.mirror_traffic``: export label to first request through the mirror.

    python -m bench.mirror_traffic --state-dir /tmp/gaps/state --topology two-flat.yaml
                                   [--services 20] [--keep]

Uses the clusters of ``--state-dir`` (e.g. kept by ``pytest suites/multicluster
--keep-clusters --state-dir DIR``), else brings ``--topology`` up. Installs the mesh
(unless that state dir has it), and the multicluster extension with a link
``source`` -> ``target`` unless the source already has Link ``target``. Then, with a
meshed test server in the target and a meshed load client in the source (namespace
``bench-first-request`` in both), for each of ``--services`` fresh Services selecting
that server, one at a time:

- label it ``mirror.linkerd.io/exported=true`` (gateway mode) at t0;
- time until its mirror ``<svc>-target`` exists in the source (polled);
- time until a request from the client through the mirror gets a 200 (the
  client's proxy resolving a name it never saw, through the target's gateway).

Prints p50 and max of both next to issue 6's targets (mirror visible p50 <= 1 s, first
request <= 3 s). Each poll is a call to an API server (the request one through the pod
proxy to the client), so the figures include up to one poll round trip
(``POLL_INTERVAL`` plus the call): they overstate, never understate. Everything the
bench created is deleted at the end (clusters it brought up too, unless ``--keep``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bench.mesh import CONTROL_PORT, MANIFESTS, clusters, install
from harness.adapters import get_adapter
from harness.adapters.multicluster import MulticlusterAdapter
from harness.kube import Kube
from harness.providers import Cluster

NAMESPACE = "bench-first-request"
EXPORT = "mirror.linkerd.io/exported"
LINK_API = "/apis/multicluster.linkerd.io/v1alpha3/namespaces/linkerd-multicluster/links"
TARGETS = {"mirror_p50_s": 1.0, "first_request_p50_s": 3.0}
POLL_INTERVAL = 0.05
"""Seconds between polls of the mirror and of the request."""
REQUEST_TIMEOUT = 2.0
"""Per-request timeout of each attempt through the mirror."""
PHASE_TIMEOUT = 120.0
"""Longest wait for one Service's mirror or first 200 before the bench gives up."""
READY_TIMEOUT = 300.0
"""Longest wait for the server, the client and the first request to the server."""


def _print(line: str) -> None:
    print(line, flush=True)


def _figure(name: str, values: list[float], target: str) -> None:
    p50, worst = statistics.median(values), max(values)
    limit = TARGETS[target]
    verdict = "met" if p50 <= limit else "MISSED"
    _print(
        f"{name:<30} p50 {p50:7.3f} s   max {worst:7.3f} s   (target p50 <= {limit:g} s: {verdict})"
    )


def ensure_link(adapter: MulticlusterAdapter, source: Cluster, target: Cluster, ks: Kube) -> None:
    """The multicluster extension on both clusters and Link ``target`` in the source."""
    if ks.http.get(f"{LINK_API}/{target.name}").status_code == 200:
        return
    started = time.monotonic()
    for cluster in (source, target):
        adapter.multicluster_install(cluster)
    adapter.link(source, target)
    _print(f"# installed multicluster and linked in {time.monotonic() - started:.1f}s")


def _fresh_namespace(k: Kube, adapter: Any) -> None:
    k.delete_namespace(NAMESPACE, wait=True)
    k.create_namespace(NAMESPACE)
    adapter.mesh_namespace(k, NAMESPACE)


def _service(name: str) -> Service:
    return Service(
        metadata=ObjectMeta(name=name, namespace=NAMESPACE, labels={"bench": "first-request"}),
        spec=ServiceSpec(selector={"app": "server"}, ports=[ServicePort(name="http", port=8080)]),
    )


def _get_ok(ks: Kube, url: str) -> bool:
    body = {"url": url, "count": 1, "concurrency": 1, "timeout": REQUEST_TIMEOUT}
    r = ks.pod_proxy(NAMESPACE, "client", CONTROL_PORT, "/run", "POST", body)
    if r.status_code != 200:
        return False
    return [str(x.get("status")) for x in r.json()["records"]] == ["200"]


def _until(what: str, check: Any, within: float) -> float:
    """Poll ``check`` every ``POLL_INTERVAL`` until true; the monotonic time it was seen."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not seen within {within:.0f}s")
        time.sleep(POLL_INTERVAL)
    return time.monotonic()


def _mirror_exists(ks: Kube, name: str) -> bool:
    try:
        ks.client.get(Service, f"{name}-target", namespace=NAMESPACE)
    except ApiError as e:
        if e.status.code == 404:
            return False
        raise
    return True


def measure(
    ks: Kube, kt: Kube, source: Cluster, names: list[str], deadline: float = PHASE_TIMEOUT
) -> tuple[list[float], list[float]]:
    """(seconds to the mirror, seconds to the first 200) for Services ``names``, one by one."""
    for name in names:
        kt.client.create(_service(name))
    mirrored, answered = [], []
    for name in names:
        url = f"http://{name}-target.{NAMESPACE}.svc.{source.domain}:8080/"
        patch = {"metadata": {"labels": {EXPORT: "true"}}}
        started = time.monotonic()
        kt.client.patch(Service, name, patch, namespace=NAMESPACE, patch_type=PatchType.MERGE)
        seen = _until(f"mirror of {name}", lambda n=name: _mirror_exists(ks, n), deadline)
        ok = _until(f"a 200 through {url}", lambda u=url: _get_ok(ks, u), deadline)
        mirrored.append(seen - started)
        answered.append(ok - started)
        _print(f"{name}  mirror {seen - started:6.3f} s   first 200 {ok - started:6.3f} s")
    return mirrored, answered


def bench(adapter: Any, found: list[Cluster], count: int) -> None:
    by_name = {c.name: c for c in found}
    source, target = by_name["source"], by_name["target"]
    ks, kt = Kube.connect(source), Kube.connect(target)
    try:
        ensure_link(adapter, source, target, ks)
        for k in (ks, kt):
            _fresh_namespace(k, adapter)
        kt.apply(
            (MANIFESTS / "mesh-server.yaml").read_text(),
            namespace=NAMESPACE,
            name="server",
            replicas="1",
            cluster=target.name,
        )
        ks.apply(
            (MANIFESTS / "testapp-client.yaml").read_text(),
            namespace=NAMESPACE,
            name="client",
            cluster=source.name,
        )
        kt.wait_deployment_ready("server", NAMESPACE, timeout=READY_TIMEOUT)
        ks.wait_pod_ready("client", NAMESPACE, timeout=READY_TIMEOUT)
        started = time.monotonic()
        measure(ks, kt, source, ["fr-warm"], deadline=READY_TIMEOUT)
        _print(f"# warm-up (client proxy and gateway ready): {time.monotonic() - started:.1f}s")
        _print(f"# {count} Services exported one by one; polls every {POLL_INTERVAL:g}s")
        mirrored, answered = measure(ks, kt, source, [f"fr-{i:03d}" for i in range(count)])
        _print("")
        _figure("export -> mirror visible", mirrored, "mirror_p50_s")
        _figure("export -> first request 200", answered, "first_request_p50_s")
    finally:
        for k in (ks, kt):
            k.delete_namespace(NAMESPACE, wait=False)
            k.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.mirror_traffic", description=__doc__.split("\n")[0]
    )
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--topology", default="two-flat")
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--keep", action="store_true", help="keep clusters this command brought up")
    p.add_argument("--mesh", default=os.environ.get("ISTHMUS_MESH", "isthmus"))
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench.mirror_traffic needs root (the netns provider)")
    if args.services < 1:
        sys.exit("--services must be at least 1")
    adapter = get_adapter(args.mesh, args.state_dir / "mesh", image_tag="dev")
    with clusters(args.state_dir, args.topology, args.keep) as found:
        if {"source", "target"} - {c.name for c in found}:
            sys.exit(f"bench.mirror_traffic needs clusters source and target; got {found}")
        install(adapter, found, args.state_dir / "mesh")
        bench(adapter, found, args.services)


if __name__ == "__main__":
    main()
