"""``python -m bench.mirror``: how fast the service-mirror controller mirrors, on real clusters.

    python -m bench.mirror --state-dir /tmp/mc-mirror/state [--counts 1,100,1000] [--latency 20]

Uses two clusters already up (``python -m harness clusters up <two-flat copy> --state-dir
DIR``: contexts ``source`` and ``target`` in ``DIR/kubeconfig``). It prepares what
``multicluster install``/``link`` would (the Link CRD, a read-only service account on the
target, the credentials Secret and a Link on the source), runs the controller as a
process on this host (``python -m mesh.multicluster.mirror``) and prints:

- export-to-mirror latency: label an existing target Service ``exported=true`` and time
  until its mirror appears on the source (p50 and max over ``--latency`` Services);
- time to mirror N Services created exported at once, and to delete them all, for each
  N of ``--counts``: from the first remote write to the last mirror seen (and how far the
  last mirror trails the last remote write);
- the controller's resident memory with the largest N mirrored.

Targets (issue 6): mirror visible p50 <= 1 s; 1000 Services <= 30 s. Figures are printed
next to their targets; everything the bench created is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
from lightkube import AsyncClient
from lightkube.codecs import load_all_yaml
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
from lightkube.resources import core_v1, rbac_authorization_v1
from lightkube.types import PatchType

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "mesh" / "crds" / "multicluster.linkerd.io.yaml"
LINK = "target"
MC_NS = "linkerd-multicluster"
BENCH_NS = "mirror-bench"
SA = "mirror-bench-remote"
TARGETS = {"mirror_p50_s": 1.0, "mirror_1000_s": 30.0}
WRITE_CONCURRENCY = 16
WRITE_ATTEMPTS = 5
REQUEST_TIMEOUT = 60.0
SYNC_TIMEOUT = 120.0
"""Longest wait for any one phase (mirrors appearing or going) before the bench gives up..."""
SYNC_TIMEOUT_PER_SERVICE = 1.0
"""...plus this much per Service of the phase (a loaded machine may write a few objects/s)."""
POLL_INTERVAL = 0.2
STOP_TIMEOUT = 10.0
GATEWAY_IDENTITY = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.target"
Link = create_namespaced_resource("multicluster.linkerd.io", "v1alpha3", "Link", "links")


def _print(line: str) -> None:
    print(line, flush=True)


def _figure(name: str, value: float, unit: str, target: str | None = None) -> None:
    verdict = ""
    if target is not None and target in TARGETS:
        limit = TARGETS[target]
        verdict = f"  (target <= {limit:g}{unit}: {'met' if value <= limit else 'MISSED'})"
    _print(f"{name:<34} {value:10.3f} {unit}{verdict}")


def _client(kubeconfig: Path, context: str) -> AsyncClient:
    return AsyncClient(
        KubeConfig.from_file(kubeconfig).get(context_name=context),
        timeout=httpx2.Timeout(REQUEST_TIMEOUT),
    )


async def _ensure(client: AsyncClient, obj: Any) -> None:
    try:
        await client.create(obj)
    except ApiError as e:
        if e.status.code != 409:
            raise


async def _fresh_namespace(client: AsyncClient, name: str) -> None:
    """Create ``name``, first waiting out a deletion a previous run left in progress."""
    deadline = time.monotonic() + SYNC_TIMEOUT
    while time.monotonic() < deadline:
        try:
            await client.create(core_v1.Namespace(metadata=ObjectMeta(name=name)))
            return
        except ApiError as e:
            if e.status.code != 409:
                raise
        ns = await client.get(core_v1.Namespace, name)
        if ns.metadata is None or ns.metadata.deletionTimestamp is None:
            return
        await asyncio.sleep(POLL_INTERVAL)
    raise SystemExit(f"bench: namespace {name} still terminating after {SYNC_TIMEOUT:.0f}s")


async def prepare(source: AsyncClient, target: AsyncClient, server: str, ca: bytes) -> None:
    """What ``multicluster install`` and ``link`` would set up, reduced to what the mirror needs."""
    for obj in load_all_yaml(CRD.read_text()):
        try:
            await source.apply(obj, field_manager="mirror-bench", force=True)
        except ApiError as e:
            raise SystemExit(f"applying {CRD}: {e}") from e
    for c in (source, target):
        await _ensure(c, core_v1.Namespace(metadata=ObjectMeta(name=MC_NS)))
        await _fresh_namespace(c, BENCH_NS)
    await _ensure(target, core_v1.ServiceAccount(metadata=ObjectMeta(name=SA, namespace=MC_NS)))
    await _ensure(
        target,
        rbac_authorization_v1.ClusterRole(
            metadata=ObjectMeta(name=SA),
            rules=[
                PolicyRule(
                    apiGroups=["", "discovery.k8s.io"],
                    resources=["services", "endpoints", "endpointslices", "namespaces"],
                    verbs=["get", "list", "watch"],
                )
            ],
        ),
    )
    await _ensure(
        target,
        rbac_authorization_v1.ClusterRoleBinding(
            metadata=ObjectMeta(name=SA),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name=SA),
            subjects=[Subject(kind="ServiceAccount", name=SA, namespace=MC_NS)],
        ),
    )
    token = await target.create(
        core_v1.ServiceAccountToken(
            metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=7200)
        ),
        name=SA,
        namespace=MC_NS,
    )
    assert token.status is not None
    kubeconfig = (
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: target, cluster: {{server: '{server}', "
        f"certificate-authority-data: {base64.b64encode(ca).decode()}}}}}]\n"
        f"users: [{{name: mirror, user: {{token: '{token.status.token}'}}}}]\n"
        "contexts: [{name: target, context: {cluster: target, user: mirror}}]\n"
        "current-context: target\n"
    )
    secret = core_v1.Secret(
        metadata=ObjectMeta(name=f"cluster-credentials-{LINK}", namespace=MC_NS),
        type="mirror.linkerd.io/remote-kubeconfig",
        data={"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()},
    )
    await source.apply(secret, field_manager="mirror-bench", force=True)
    link = Link(
        metadata=ObjectMeta(name=LINK, namespace=MC_NS),
        spec=_LINK_SPEC,
    )
    await source.apply(link, field_manager="mirror-bench", force=True)


_LINK_SPEC: dict[str, Any] = {
    "targetClusterName": LINK,
    "targetClusterDomain": "target",
    "targetClusterLinkerdNamespace": "linkerd",
    "clusterCredentialsSecret": f"cluster-credentials-{LINK}",
    "gatewayAddress": "192.0.2.10",  # TEST-NET: never answers, and Endpoints refuse loopback
    "gatewayPort": "4143",
    "gatewayIdentity": GATEWAY_IDENTITY,
    "probeSpec": {
        "path": "/ready",
        "port": "4191",
        "period": "3s",
        "failureThreshold": "3",
        "timeout": "1s",
    },
    "selector": {"matchLabels": {"mirror.linkerd.io/exported": "true"}},
    "remoteDiscoverySelector": {"matchLabels": {"mirror.linkerd.io/exported": "remote-discovery"}},
}


class MirrorWatch:
    """The mirrors on the source, as a set of names with the time each appeared or went."""

    def __init__(self, source: AsyncClient) -> None:
        self._source = source
        self.present: dict[str, float] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        labels: dict[str, Any] = {
            "mirror.linkerd.io/mirrored-service": "true",
            "mirror.linkerd.io/cluster-name": LINK,
        }
        listing = self._source.list(core_v1.Service, namespace=BENCH_NS, labels=labels)
        async for svc in listing:
            assert svc.metadata is not None
            assert svc.metadata.name is not None
            self.present[svc.metadata.name] = time.monotonic()
        version = listing.resourceVersion
        self._task = asyncio.create_task(self._watch(labels, version))

    async def _watch(self, labels: dict[str, Any], version: str | None) -> None:
        async for change, svc in self._source.watch(
            core_v1.Service, namespace=BENCH_NS, labels=labels, resource_version=version
        ):
            assert svc.metadata is not None
            assert svc.metadata.name is not None
            if change == "ADDED":
                self.present[svc.metadata.name] = time.monotonic()
            elif change == "DELETED":
                self.present.pop(svc.metadata.name, None)
            self.changed.set()

    async def until(self, done: Any, what: str, services: int = 1) -> float:
        """Wait until ``done(self.present)``; the monotonic time it became true."""
        timeout = SYNC_TIMEOUT + SYNC_TIMEOUT_PER_SERVICE * services
        deadline = time.monotonic() + timeout
        while not done(self.present):
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"bench: {what} not seen within {timeout:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=left)
        return time.monotonic()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _service(name: str, exported: bool) -> core_v1.Service:
    labels = {"app": name, "bench": "mirror"}
    if exported:
        labels["mirror.linkerd.io/exported"] = "true"
    return core_v1.Service(
        metadata=ObjectMeta(name=name, namespace=BENCH_NS, labels=labels),
        spec=ServiceSpec(ports=[ServicePort(name="http", port=80, targetPort=8080)]),
    )


async def _bounded(calls: list[Any]) -> float:
    """Run ``calls`` (coroutine factories) ``WRITE_CONCURRENCY`` at a time; when the last ended.

    A write that times out or meets a 5xx is tried again (a loaded API server sheds load);
    "already exists" after a retried create and "not found" after a retried delete are done.
    """
    sem = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def one(call: Any) -> None:
        async with sem:
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    await call()
                    return
                except ApiError as e:
                    if attempt and e.status.code in (404, 409):
                        return
                    if e.status.code is None or e.status.code < 500:
                        raise
                except httpx2.TransportError:
                    pass
            raise SystemExit(f"bench: a write failed {WRITE_ATTEMPTS} times")

    await asyncio.gather(*(one(c) for c in calls))
    return time.monotonic()


async def latency(target: AsyncClient, mirrors: MirrorWatch, count: int) -> None:
    names = [f"lat-{i}" for i in range(count)]
    await _bounded([lambda n=n: target.create(_service(n, exported=False)) for n in names])
    samples: list[float] = []
    for name in names:
        started = time.monotonic()
        await target.patch(
            core_v1.Service,
            name,
            {"metadata": {"labels": {"mirror.linkerd.io/exported": "true"}}},
            namespace=BENCH_NS,
            patch_type=PatchType.MERGE,
        )
        seen = await mirrors.until(lambda p, m=f"{name}-{LINK}": m in p, f"mirror of {name}")
        samples.append(seen - started)
    _figure(f"export->mirror p50 ({count} svcs)", statistics.median(samples), "s", "mirror_p50_s")
    _figure(f"export->mirror max ({count} svcs)", max(samples), "s")
    await _bounded(
        [lambda n=n: target.delete(core_v1.Service, n, namespace=BENCH_NS) for n in names]
    )
    await mirrors.until(lambda p: not any(k.startswith("lat-") for k in p), "latency mirrors gone")


async def bulk(target: AsyncClient, mirrors: MirrorWatch, count: int, pid: int) -> None:
    names = [f"bulk{count}-{i}" for i in range(count)]
    mine = {f"{n}-{LINK}" for n in names}
    cpu = _cpu_s(pid)
    started = time.monotonic()
    written = await _bounded([lambda n=n: target.create(_service(n, exported=True)) for n in names])
    seen = await mirrors.until(lambda p: mine <= p.keys(), f"{count} mirrors", count)
    unit = "mirror_1000_s" if count == 1000 else None
    _figure(f"mirror {count} services", seen - started, "s", unit)
    _figure("  last mirror after last create", max(0.0, seen - written), "s")
    _figure(f"  controller RSS with {count}", _rss_mib(pid), "MiB")
    _figure("  controller CPU while mirroring", _cpu_s(pid) - cpu, "s")
    cpu = _cpu_s(pid)
    started = time.monotonic()
    written = await _bounded(
        [lambda n=n: target.delete(core_v1.Service, n, namespace=BENCH_NS) for n in names]
    )
    gone = await mirrors.until(lambda p: not (mine & p.keys()), f"{count} mirrors deleted", count)
    _figure(f"delete {count} mirrors", gone - started, "s")
    _figure("  last delete after last remote delete", max(0.0, gone - written), "s")
    _figure("  controller CPU while deleting", _cpu_s(pid) - cpu, "s")


async def _controller_ready(source: AsyncClient) -> None:
    """Wait until the Link says the controller has listed both clusters (``Ready=True``)."""
    deadline = time.monotonic() + SYNC_TIMEOUT
    while time.monotonic() < deadline:
        link = await source.get(Link, LINK, namespace=MC_NS)
        status = link.get("status") or {}
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions", [])
        ):
            return
        await asyncio.sleep(POLL_INTERVAL)
    raise SystemExit(f"bench: the controller did not report Ready within {SYNC_TIMEOUT:.0f}s")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def cleanup(source: AsyncClient, target: AsyncClient) -> None:
    for c in (source, target):
        with contextlib.suppress(ApiError):
            await c.delete(core_v1.Namespace, BENCH_NS)
    for res in (rbac_authorization_v1.ClusterRoleBinding, rbac_authorization_v1.ClusterRole):
        with contextlib.suppress(ApiError):
            await target.delete(res, SA)
    with contextlib.suppress(ApiError):
        await source.delete(Link, LINK, namespace=MC_NS)


async def run(
    state_dir: Path, server: str, ca: bytes, counts: list[int], latency_count: int, port: int
) -> None:
    kubeconfig = state_dir / "kubeconfig"
    source, target = _client(kubeconfig, "source"), _client(kubeconfig, "target")
    mirrors = MirrorWatch(source)
    try:
        await prepare(source, target, server, ca)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mesh.multicluster.mirror",
            "--link-name",
            LINK,
            "--metrics-addr",
            f"127.0.0.1:{port}",
            "--log-level",
            "WARNING",
            env={**os.environ, "KUBECONFIG": str(state_dir / "source" / "admin.kubeconfig")},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=ROOT,
        )
        try:
            await mirrors.start()
            _print(f"# controller pid {proc.pid}, admin 127.0.0.1:{port}")
            await _controller_ready(source)
            if latency_count:
                await latency(target, mirrors, latency_count)
            for count in counts:
                await bulk(target, mirrors, count, proc.pid)
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=STOP_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    finally:
        await mirrors.stop()
        await cleanup(source, target)
        await source.close()
        await target.close()


def core_only(count: int) -> None:
    """The controller's own cost: its core deciding ``count`` mirrors and their deletion.

    No API server: each command's effect is fed back as the local watch would report it.
    Isolates the controller from the cluster, whose write rate dominates on a loaded host.
    """
    from mesh.k8s.events import Deleted, Listed, Upserted
    from mesh.k8s.objects import EndpointSlice, Service, ServicePort
    from mesh.multicluster.mirror import messages as mc
    from mesh.multicluster.mirror.core import MirrorCore
    from mesh.multicluster.mirror.desired import MirrorEndpoints
    from mesh.multicluster.mirror.link import parse_link

    link = parse_link({"metadata": {"name": LINK}, "spec": _LINK_SPEC})
    engine = MirrorCore(LINK)
    feed = engine.handle
    feed(mc.LinkUpdated(link, link.gateway_addresses))
    feed(mc.LocalEvent(Listed(Service, ())))
    feed(mc.LocalEvent(Listed(MirrorEndpoints, ())))
    feed(mc.LocalEvent(Listed(mc.Namespace, (mc.Namespace(BENCH_NS),))))
    feed(mc.RemoteEvent(Listed(EndpointSlice, ())))
    feed(mc.RemoteEvent(Listed(Service, ())))
    remotes = [
        Service(
            BENCH_NS,
            f"svc-{i}",
            ports=(ServicePort(80, "http", "TCP", 8080),),
            labels={"mirror.linkerd.io/exported": "true", "app": f"svc-{i}"},
            resource_version=str(i),
        )
        for i in range(count)
    ]

    def echo(commands: list[mc.Command]) -> None:
        for c in commands:
            if isinstance(c, mc.ApplyService):
                svc = c.service
                ports = tuple(
                    ServicePort(p.port, p.name, p.protocol, p.target_port) for p in svc.ports
                )
                local = Service(
                    svc.namespace, svc.name, ports, labels=svc.labels, annotations=svc.annotations
                )
                echo(feed(mc.LocalEvent(Upserted(local))))
            elif isinstance(c, mc.ApplyEndpoints):
                echo(feed(mc.LocalEvent(Upserted(c.endpoints))))
            elif isinstance(c, mc.DeleteMirror):
                echo(feed(mc.LocalEvent(Deleted(Service(c.key.namespace, c.key.name)))))
                echo(feed(mc.LocalEvent(Deleted(MirrorEndpoints(c.key.namespace, c.key.name)))))

    started = time.process_time()
    for remote in remotes:
        echo(feed(mc.RemoteEvent(Upserted(remote))))
    status = engine.take_status()
    assert status is not None
    assert len(engine.mirrors()) == count, f"{len(engine.mirrors())} mirrors, expected {count}"
    _figure(f"core: decide {count} mirrors", time.process_time() - started, "s CPU")
    started = time.process_time()
    for remote in remotes:
        echo(feed(mc.RemoteEvent(Deleted(remote))))
    assert not engine.mirrors()
    _figure(f"core: decide deleting {count}", time.process_time() - started, "s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mirror", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--state-dir", type=Path, help="clusters to use (else --core-only)")
    parser.add_argument(
        "--core-only", type=int, default=0, metavar="N", help="time the core alone on N services"
    )
    parser.add_argument("--counts", default="1,100,1000")
    parser.add_argument("--latency", type=int, default=20, help="services for the latency figure")
    args = parser.parse_args()
    if args.core_only:
        core_only(args.core_only)
        return
    if args.state_dir is None:
        raise SystemExit("bench: --state-dir (clusters) or --core-only N")
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    target = KubeConfig.from_file(args.state_dir / "target" / "admin.kubeconfig").get()
    if target is None or not target.cluster.certificate_auth:
        raise SystemExit("bench: the target's admin kubeconfig names no cluster with a CA file")
    ca = Path(target.cluster.certificate_auth).read_bytes()
    _print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    asyncio.run(run(args.state_dir, target.cluster.server, ca, counts, args.latency, _free_port()))


if __name__ == "__main__":
    main()
