"""``python -m bench.mesh``: what the mesh costs, measured on real clusters (netns provider).

    python -m bench.mesh [--state-dir /run/isthmus/meshdev] [--topology mesh-dev]
                         [--rates 100,500,1000,2000] [--seconds 10] [--keep]

Uses the clusters of ``--state-dir`` when a run kept them there (``pytest ... --keep-clusters
--state-dir DIR``), else brings ``--topology`` up (and down afterwards unless ``--keep``);
installs the mesh through the adapter unless that state dir already has it. Then, in two
namespaces, one meshed and one not, a test server and a load client on the first cluster
(``target`` if there is one), and prints:

- latency p50/p99 of client -> Service -> server, meshed and unmeshed, at each rate
  (open loop: requests start on schedule whatever became of earlier ones);
- the most requests per second through one proxy pair (unpaced, many in flight);
- resident memory of each control-plane pod and of one proxy (the server's), read from
  the container processes (the kubelet stand-in reports ``isthmus://<pid>`` container ids)
  and their descendants.

Figures are printed, not judged: this is a benchmark, not a test. A closing note sets
the meshed figures beside those landed before the proxy rewrite (``LANDED``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from lightkube.resources.core_v1 import Pod

from harness import topology as topo
from harness.adapters import MeshAdapter, get_adapter, state
from harness.adapters.promtext import Metrics
from harness.kube import Kube, WaitTimeout, wait_for
from harness.providers import Cluster
from harness.providers.netns.provider import STATE_ROOT
from harness.session import ClusterSession

MANIFESTS = Path(__file__).resolve().parent.parent / "fixtures" / "manifests"
CONTROL_PORT = 9090
CONTAINER_ID_SCHEME = "isthmus://"
#: requests in flight for paced runs (enough that the schedule, not the slots, sets the pace).
PACED_CONCURRENCY = 64
#: requests in flight for the throughput run, and how many requests it sends.
THROUGHPUT_CONCURRENCY = 32
THROUGHPUT_REQUESTS = 5000
#: per-request timeout of every run.
REQUEST_TIMEOUT = 5.0
#: seconds the meshed client may take to talk mTLS to the server after both are ready
#: (discovery and certificates); the control-plane pods may be restarting.
MTLS_READY = 120.0
#: seconds an HTTP call to the API server may take beyond the run itself.
CALL_SLACK = 30.0
#: meshed figures landed before the proxy rewrite (issue 12): (rate, percentile) -> ms.
LANDED = {(500.0, "p99_ms"): 89.9, (1000.0, "p50_ms"): 30.0}


def _print(line: str) -> None:
    print(line, flush=True)


# -- clusters and mesh --------------------------------------------------------------------------


@contextmanager
def clusters(state_dir: Path, topology: str, keep: bool) -> Iterator[list[Cluster]]:
    session = ClusterSession("netns", topo.load(topology), state_dir, keep=keep)
    existed = session.provisioned() is not None
    started = time.monotonic()
    found = session.acquire()
    if not existed:
        _print(f"# brought up {topology} in {time.monotonic() - started:.1f}s ({state_dir})")
    try:
        yield found
    finally:
        if not existed:
            session.release()  # a no-op when kept


def install(adapter: MeshAdapter, found: list[Cluster], workdir: Path) -> None:
    started = time.monotonic()
    before = state.read(workdir)
    state.ensure_installed(adapter, found, workdir, f"bench-{uuid.uuid4().hex[:8]}")
    if before is None or before.get("error"):
        _print(f"# installed {adapter.name} in {time.monotonic() - started:.1f}s")


# -- workloads ------------------------------------------------------------------------------------


def deploy(k: Kube, adapter: MeshAdapter, namespace: str, meshed: bool) -> tuple[str, str]:
    """A server and a load client in a fresh ``namespace``; (client pod, server pod)."""
    k.delete_namespace(namespace, wait=True)
    k.create_namespace(namespace)
    if meshed:
        adapter.mesh_namespace(k, namespace)
    k.apply(
        (MANIFESTS / "mesh-server.yaml").read_text(),
        namespace=namespace,
        name="server",
        replicas="1",
        cluster=k.name,
    )
    k.apply(
        (MANIFESTS / "testapp-client.yaml").read_text(),
        namespace=namespace,
        name="client",
        cluster=k.name,
    )
    k.wait_deployment_ready("server", namespace)
    k.wait_pod_ready("client", namespace)
    (server,) = k.pods(namespace, {"app": "server"})
    name = server.metadata.name if server.metadata else None
    if name is None:
        raise RuntimeError(f"the server pod in {namespace} has no name: {server}")
    return "client", name


def wait_mtls(k: Kube, namespace: str, url: str) -> None:
    """Wait until the meshed client's requests reach the server over mTLS (it names the client)."""
    body = {"url": url, "count": 10, "concurrency": 1, "timeout": REQUEST_TIMEOUT}

    def secured() -> bool | None:
        r = k.pod_proxy(namespace, "client", CONTROL_PORT, "/run", "POST", body)
        records = r.json()["records"] if r.status_code == 200 else []
        ids = [(x.get("responder") or {}).get("client_id") for x in records]
        return True if ids and all(ids) else None

    try:
        wait_for(f"mTLS from {namespace}/client to {url}", secured, MTLS_READY)
    except WaitTimeout as e:
        _print(f"# WARNING: the meshed figures below may not be mTLS: {e}")


def run(
    k: Kube, namespace: str, url: str, count: int, rate: float, concurrency: int
) -> dict[str, Any]:
    body = {
        "url": url,
        "count": count,
        "rate": rate,
        "concurrency": concurrency,
        "timeout": REQUEST_TIMEOUT,
    }
    budget = (count / rate if rate else count * REQUEST_TIMEOUT / concurrency) + CALL_SLACK
    r = k.pod_proxy(namespace, "client", CONTROL_PORT, "/run", "POST", body, timeout=budget)
    if r.status_code != 200:
        raise RuntimeError(f"/run in {namespace} answered {r.status_code}: {r.text[:300]}")
    summary: dict[str, Any] = r.json()["summary"]
    return summary


# -- memory ---------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(proc.name))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int, tree: dict[int, list[int]]) -> float:
    """Resident memory of ``pid`` and all its descendants, MiB."""
    seen, todo, total = set(), [pid], 0
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kib(p)
        todo += tree.get(p, [])
    return total / 1024


def container_pids(pod: Pod, container: str | None = None) -> list[int]:
    statuses = pod.status.containerStatuses if pod.status else None
    pids = []
    for s in statuses or []:
        cid = s.containerID or ""
        if (container is None or s.name == container) and cid.startswith(CONTAINER_ID_SCHEME):
            tail = cid[len(CONTAINER_ID_SCHEME) :]
            if tail.isdigit():
                pids.append(int(tail))
    return pids


def memory(k: Kube, adapter: MeshAdapter, namespace: str, server_pod: str) -> None:
    tree = _children()
    _print("\n# resident memory (process and descendants)")
    total = 0.0
    for ns in adapter.control_plane_namespaces:
        for pod in k.pods(ns):
            name = pod.metadata.name if pod.metadata else "?"
            mib = sum(tree_rss_mib(p, tree) for p in container_pids(pod))
            total += mib
            _print(f"control plane  {name:<48} {mib:8.1f} MiB")
    _print(f"control plane  {'total':<48} {total:8.1f} MiB")
    pod = k.client.get(Pod, server_pod, namespace=namespace)
    pids = container_pids(pod, "linkerd-proxy")
    if pids:
        mib = sum(tree_rss_mib(p, tree) for p in pids)
        _print(f"proxy          {namespace}/{server_pod:<36} {mib:8.1f} MiB (after the load)")
    else:
        _print(f"proxy          no linkerd-proxy container process found in {server_pod}")


# -- main -----------------------------------------------------------------------------------------


def _fmt(s: dict[str, Any], wanted: int) -> str:
    achieved = s["count"] / s["duration_s"] if s["duration_s"] else 0
    failed = s["count"] - s["ok"]
    return (
        f"p50 {s['p50_ms'] or 0:7.2f} ms  p99 {s['p99_ms'] or 0:7.2f} ms  "
        f"ok {s['ok']:>6}/{wanted:<6} failed {failed:<4} achieved {achieved:7.1f}/s"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.mesh", description=__doc__.split("\n")[0])
    p.add_argument("--state-dir", type=Path, default=STATE_ROOT / "meshdev")
    p.add_argument("--topology", default="mesh-dev")
    p.add_argument("--rates", default="100,500,1000,2000", help="comma-separated requests/s")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each paced run")
    p.add_argument("--keep", action="store_true", help="keep clusters this command brought up")
    p.add_argument("--mesh", default=os.environ.get("ISTHMUS_MESH", "isthmus"))
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench.mesh needs root (the netns provider)")
    rates = [float(r) for r in args.rates.split(",") if r]
    adapter = get_adapter(args.mesh, args.state_dir / "mesh", image_tag="dev")
    with clusters(args.state_dir, args.topology, args.keep) as found:
        install(adapter, found, args.state_dir / "mesh")
        target = next((c for c in found if c.name == "target"), found[0])
        k = Kube.connect(target)
        try:
            _bench(k, adapter, target, rates, args.seconds)
        finally:
            for ns in ("bench-meshed", "bench-plain"):
                k.delete_namespace(ns, wait=False)
            k.close()


def _bench(
    k: Kube, adapter: MeshAdapter, cluster: Cluster, rates: list[float], seconds: float
) -> None:
    sides = {"meshed": "bench-meshed", "unmeshed": "bench-plain"}
    servers = {}
    for side, ns in sides.items():
        _, servers[side] = deploy(k, adapter, ns, meshed=side == "meshed")
    urls = {side: f"http://server.{ns}.svc.{cluster.domain}:8080/" for side, ns in sides.items()}
    for side, ns in sides.items():  # warm connections, discovery and certificates
        run(k, ns, urls[side], 200, 0, 8)
    wait_mtls(k, sides["meshed"], urls["meshed"])
    _print(f"# {adapter.name} on {cluster.name}: load client -> Service -> server, same run")
    _print("\n# latency at a fixed rate (open loop)")
    meshed: dict[float, dict[str, Any]] = {}
    for rate in rates:
        count = int(rate * seconds)
        for side, ns in sides.items():
            try:
                s = run(k, ns, urls[side], count, rate, PACED_CONCURRENCY)
            except (httpx.HTTPError, RuntimeError) as e:
                # the load client could not finish in time (an overloaded machine): say so
                _print(f"{rate:6.0f}/s  {side:<9} no figures: {type(e).__name__}: {e}")
                continue
            _print(f"{rate:6.0f}/s  {side:<9} {_fmt(s, count)}")
            if side == "meshed":
                meshed[rate] = s
    _print(f"\n# throughput: {THROUGHPUT_REQUESTS} requests, {THROUGHPUT_CONCURRENCY} in flight")
    for side, ns in sides.items():
        s = run(k, ns, urls[side], THROUGHPUT_REQUESTS, 0, THROUGHPUT_CONCURRENCY)
        _print(f"max      {side:<9} {_fmt(s, THROUGHPUT_REQUESTS)}")
    tls(k, adapter, sides["meshed"], servers["meshed"])
    memory(k, adapter, sides["meshed"], servers["meshed"])
    compare_landed(meshed)


def compare_landed(meshed: dict[float, dict[str, Any]]) -> None:
    """The closing note: this run's meshed figures beside those landed before (``LANDED``)."""
    _print("\n# meshed, compared with the figures landed before the proxy rewrite")
    for (rate, key), before in LANDED.items():
        s = meshed.get(rate)
        now = s.get(key) if s else None
        if now is None:
            _print(f"{rate:6.0f}/s  {key[:3]}  before {before:7.1f} ms  now: not measured")
            continue
        _print(f"{rate:6.0f}/s  {key[:3]}  before {before:7.1f} ms  now {now:7.2f} ms")


def tls(k: Kube, adapter: MeshAdapter, namespace: str, server_pod: str) -> None:
    """How much of what the meshed server got came over mTLS (else the figures mislead)."""
    m = Metrics.parse(adapter.metrics(k, namespace, server_pod))
    total = m.sum("request_total", direction="inbound")
    secured = m.sum("request_total", direction="inbound", tls="true")
    _print(
        f"\n# meshed server's proxy: {secured:.0f} of {total:.0f} inbound requests over mTLS "
        "(the rest: probes, or clients that could not resolve the service)"
    )


if __name__ == "__main__":
    main()
