"""A pod worker end to end on a real host, with a fake API at the KubeApi seam.

Root only: real network namespaces and processes, no API server. Covers the
sequence a pod goes through: sandbox, volumes, init container, probes, status
patches, restarts with back-off, completion, deletion and cleanup.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from harness.providers.netns.kubelet.api import KubeApi
from harness.providers.netns.kubelet.backoff import BackoffPolicy
from harness.providers.netns.kubelet.config import KubeletConfig, KubeletTimings
from harness.providers.netns.kubelet.context import IpamStore, NodeContext
from harness.providers.netns.kubelet.events import EventRecorder
from harness.providers.netns.kubelet.kobjects import JsonDict, Pod
from harness.providers.netns.kubelet.naming import pod_netns
from harness.providers.netns.kubelet.nsnet import NetnsSockets
from harness.providers.netns.kubelet.probes import Prober
from harness.providers.netns.kubelet.sandbox import SandboxRecords, netns_exists
from harness.providers.netns.kubelet.worker import PodWorker

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 to create network namespaces",
)

NODE_IP = "10.251.0.1"
CIDR = "10.251.9.0/24"


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


class FakeApi:
    """Records what the worker writes; fails loudly on anything unexpected."""

    def __init__(self) -> None:
        self.statuses: list[JsonDict] = []
        self.deleted: list[tuple[str, str, str]] = []
        self.events: list[JsonDict] = []

    async def get_configmap(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return {"greeting": b"hello"} if name == "cfg" else None

    async def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return None

    async def kubernetes_service(self) -> tuple[str, int] | None:
        return ("10.96.0.1", 443)

    async def patch_pod_status(self, namespace: str, name: str, status: JsonDict) -> bool:
        self.statuses.append(status)
        return True

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        self.deleted.append((namespace, name, uid))

    async def create_event(self, namespace: str, event: JsonDict) -> None:
        self.events.append(event)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected API call {name}")


@pytest.fixture
def node_ns() -> Iterator[str]:
    name = f"iktw-{secrets.token_hex(3)}-node"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "addr", "add", NODE_IP + "/32", "dev", "lo")
        yield name
    finally:
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            sh("kill", "-9", pid, check=False)
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
async def context(node_ns: str, tmp_path: Path) -> AsyncIterator[tuple[NodeContext, FakeApi]]:
    cfg = KubeletConfig(
        kubeconfig=tmp_path / "kubeconfig",
        node_name="node-a",
        node_ip=NODE_IP,
        node_netns=node_ns,
        cluster_name="c",
        cluster_domain="c.local",
        dns_ip="10.96.0.10",
        state_dir=tmp_path / "state",
        netns_prefix=node_ns.removesuffix("-node") + "-p",
        bin_dir=Path(sys.executable).parent,
        timings=KubeletTimings(
            status_debounce=0.01,
            volume_retry=0.5,
            retry=0.5,
            backoff=BackoffPolicy(initial=0.2, cap=0.5),
        ),
    )
    api = FakeApi()
    seam = cast(KubeApi, api)
    sockets = NetnsSockets(Path("/run/netns") / node_ns)
    ctx = NodeContext(
        cfg,
        seam,
        EventRecorder(seam, "node-a"),
        IpamStore(cfg.state_dir, CIDR),
        SandboxRecords(cfg.state_dir),
        Prober(sockets),
    )
    try:
        yield ctx, api
    finally:
        sockets.close()


def pod(uid: str, spec: dict[str, Any]) -> Pod:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": uid}, "spec": spec}  # type: ignore[typeddict-item]


async def until(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def cond(status: JsonDict, ctype: str) -> str:
    return str(next(c["status"] for c in status["conditions"] if c["type"] == ctype))


async def test_pod_with_init_volume_and_readiness_runs_then_is_deleted(
    context: tuple[NodeContext, FakeApi],
) -> None:
    ctx, api = context
    uid = f"{secrets.token_hex(4)}-aaaa-bbbb-cccc-{secrets.token_hex(6)}"
    worker = PodWorker(
        ctx,
        pod(
            uid,
            {
                "initContainers": [
                    {
                        "name": "init",
                        "image": "isthmus/isthmus",
                        "command": ["sh", "-c", "cp /cfg/greeting /data/x"],
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/data"},
                            {"name": "cfg", "mountPath": "/cfg"},
                        ],
                    }
                ],
                "containers": [
                    {
                        "name": "app",
                        "image": "isthmus/isthmus",
                        "command": ["python3", "-m", "http.server", "8080", "--directory", "/data"],
                        "securityContext": {"runAsUser": 65534},
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {
                            "httpGet": {"path": "/x", "port": "http"},
                            "periodSeconds": 1,
                        },
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "cfg"}},
                ],
                "terminationGracePeriodSeconds": 5,
                # no DNS server here: answer "refused" at once (http.server does reverse lookups)
                "dnsPolicy": "None",
                "dnsConfig": {"nameservers": ["127.0.0.1"], "searches": ["x"]},
            },
        ),
    )
    worker.start()
    try:
        await until(
            "Ready", lambda: bool(api.statuses) and cond(api.statuses[-1], "Ready") == "True"
        )
        status = api.statuses[-1]
        assert status["phase"] == "Running"
        assert status["podIP"] == "10.251.9.2"
        assert status["hostIP"] == NODE_IP
        init = status["initContainerStatuses"][0]
        assert init["state"]["terminated"]["reason"] == "Completed"
        app = status["containerStatuses"][0]
        assert app["ready"] is True
        assert app["containerID"].startswith("isthmus://")
        netns = pod_netns(ctx.config.netns_prefix, uid)
        assert netns_exists(netns)
        resolv = (ctx.config.etc_netns / netns / "resolv.conf").read_text()
        assert resolv == "nameserver 127.0.0.1\nsearch x\n"
        reasons = [e["reason"] for e in api.events]
        assert reasons.count("Started") == 2
    finally:
        worker.update(
            {
                **worker.pod,
                "metadata": {**worker.pod["metadata"], "deletionTimestamp": "2025-01-01T00:00:00Z"},
            }
        )
        await asyncio.wait_for(worker.terminate(worker.grace_period(), delete=True), 20)
    assert api.deleted == [("ns", "web", uid)]
    assert not netns_exists(netns)
    assert not (ctx.config.etc_netns / netns).exists()
    assert not (ctx.config.state_dir / "pods" / uid).exists()
    assert ctx.ipam.ipam.allocations == {}


async def test_failing_container_backs_off_then_a_never_pod_completes(
    context: tuple[NodeContext, FakeApi],
) -> None:
    ctx, api = context
    crash_uid = f"{secrets.token_hex(4)}-1111-2222-3333-{secrets.token_hex(6)}"
    crasher = PodWorker(
        ctx,
        pod(
            crash_uid,
            {
                "restartPolicy": "OnFailure",
                "containers": [
                    {
                        "name": "app",
                        "image": "isthmus/isthmus",
                        "command": ["sh", "-c", "echo boom; exit 3"],
                    }
                ],
            },
        ),
    )
    done_uid = f"{secrets.token_hex(4)}-4444-5555-6666-{secrets.token_hex(6)}"
    oneshot = PodWorker(
        ctx,
        pod(
            done_uid,
            {
                "restartPolicy": "Never",
                "containers": [{"name": "app", "image": "isthmus/isthmus", "command": ["true"]}],
            },
        ),
    )
    bad_uid = f"{secrets.token_hex(4)}-7777-8888-9999-{secrets.token_hex(6)}"
    bad = PodWorker(
        ctx,
        pod(
            bad_uid,
            {
                "containers": [{"name": "web", "image": "redis:7"}],
            },
        ),
    )
    crasher.start()
    try:

        def restarted_twice() -> bool:
            mine = [s for s in api.statuses if s.get("podIP") == crasher.pod_ip]
            return any(s["containerStatuses"][0]["restartCount"] >= 2 for s in mine)

        await until("two restarts", restarted_twice)
        waiting = [
            s["containerStatuses"][0]
            for s in api.statuses
            if "waiting" in s["containerStatuses"][0]["state"]
        ]
        assert any(c["state"]["waiting"]["reason"] == "CrashLoopBackOff" for c in waiting)
        assert any(c["lastState"].get("terminated", {}).get("exitCode") == 3 for c in waiting)
        previous = crasher.log_file("app", previous=True)
        assert previous is not None
        assert previous.read_text() == "boom\n"
    finally:
        await asyncio.wait_for(crasher.terminate(1, delete=False), 20)

    oneshot.start()
    bad.start()
    try:
        await until("Succeeded", lambda: oneshot.terminal_phase == "Succeeded")
        await until(
            "sandbox released",
            lambda: not netns_exists(pod_netns(ctx.config.netns_prefix, done_uid)),
        )
        await until(
            "unrunnable image reported",
            lambda: any(
                s["containerStatuses"][0]["state"].get("waiting", {}).get("reason")
                == "ImageNotRunnable"
                for s in api.statuses
                if s.get("podIP") == bad.pod_ip
            ),
        )
        assert any(e["reason"] == "Failed" and "redis:7" in e["message"] for e in api.events)
        await until(
            "Succeeded reported", lambda: any(s["phase"] == "Succeeded" for s in api.statuses)
        )
    finally:
        await asyncio.wait_for(oneshot.terminate(1, delete=False), 20)
        await asyncio.wait_for(bad.terminate(1, delete=False), 20)
    assert api.deleted == []
    assert not netns_exists(pod_netns(ctx.config.netns_prefix, bad_uid))


async def test_post_start_runs_before_the_next_container_and_pre_stop_on_deletion(
    context: tuple[NodeContext, FakeApi],
    tmp_path: Path,
) -> None:
    ctx, api = context
    shared = tmp_path / "shared"
    shared.mkdir()
    uid = f"{secrets.token_hex(4)}-abab-cdcd-efef-{secrets.token_hex(6)}"
    worker = PodWorker(
        ctx,
        pod(
            uid,
            {
                "containers": [
                    {
                        "name": "proxy",
                        "image": "isthmus/isthmus",
                        "command": ["sleep", "1000"],
                        "lifecycle": {
                            "postStart": {
                                "exec": {
                                    "command": ["sh", "-c", "sleep 0.3; echo ready > /shared/post"]
                                }
                            },
                            "preStop": {
                                "exec": {"command": ["sh", "-c", "echo bye > /shared/pre"]}
                            },
                        },
                        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                    },
                    {
                        "name": "app",
                        "image": "isthmus/isthmus",
                        "command": ["sh", "-c", "cat /shared/post; sleep 1000"],
                        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                    },
                ],
                "volumes": [{"name": "shared", "hostPath": {"path": str(shared)}}],
                "terminationGracePeriodSeconds": 3,
            },
        ),
    )
    worker.start()
    try:
        await until(
            "both running",
            lambda: (
                bool(api.statuses)
                and all(c["ready"] for c in api.statuses[-1]["containerStatuses"])
            ),
        )
        log = worker.log_file("app", previous=False)
        assert log is not None
        await until("app output", lambda: log.read_text() == "ready\n")
    finally:
        await asyncio.wait_for(worker.terminate(worker.grace_period(), delete=False), 20)
    assert (shared / "pre").read_text() == "bye\n"
