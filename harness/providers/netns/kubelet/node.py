"""The Node object and its heartbeats: registration, Lease renewal, status updates (IO).

A restarted kubelet reuses an existing Node of its name (labels and status are
re-applied). Pods start only once the controller manager has set ``spec.podCIDR``.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import socket
import uuid
from datetime import UTC, datetime
from typing import cast

import httpx2
from lightkube import ApiError
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node, NodeStatus
from lightkube.types import PatchType

from harness.providers.netns.kubelet.api import LightkubeApi
from harness.providers.netns.kubelet.config import KubeletConfig
from harness.providers.netns.kubelet.kobjects import JsonDict
from harness.providers.netns.kubelet.podstatus import rfc3339

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
CAPACITY = {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def arch() -> str:
    machine = platform.machine()
    return ARCH.get(machine, machine)


def node_labels(cfg: KubeletConfig) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": cfg.node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch(),
        "isthmus.dev/cluster": cfg.cluster_name,
    }


def node_status(
    cfg: KubeletConfig, version: str, now: str, since: dict[str, str] | None = None
) -> JsonDict:
    """The Node's status; ``since`` keeps each condition's lastTransitionTime."""
    since = since or {}

    def cond(ctype: str, status: str, reason: str, message: str) -> JsonDict:
        return {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since.get(ctype, now),
        }

    return {
        "capacity": dict(CAPACITY),
        "allocatable": dict(CAPACITY),
        "conditions": [
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": cfg.node_ip},
            {"type": "Hostname", "address": cfg.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.log_port}},
        "nodeInfo": {
            "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, cfg.node_name).hex,
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, cfg.node_name)),
            "bootID": _boot_id(),
            "kernelVersion": platform.release(),
            "osImage": f"Isthmus netns node on {socket.gethostname()}",
            "containerRuntimeVersion": "isthmus://0.1.0",
            "kubeletVersion": version,
            "kubeProxyVersion": version,
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    }


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    def __init__(self, api: LightkubeApi, cfg: KubeletConfig) -> None:
        self.api = api
        self.cfg = cfg
        self.version = "v0.0.0"
        self.node_uid = ""
        self._since: dict[str, str] = {}

    async def register(self) -> None:
        """Create the Node (or adopt the existing one) and post its status."""
        self.version = await self.api.server_version()
        client = self.api.client
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.cfg.node_name, "labels": node_labels(self.cfg)},
            "status": node_status(self.cfg, self.version, rfc3339()),
        }
        try:
            node = await client.create(cast(Node, Node.from_dict(body)))
            log.info("registered node %s", self.cfg.node_name)
        except ApiError as e:
            if e.status.code != 409:
                raise
            node = await client.patch(
                Node,
                self.cfg.node_name,
                {"metadata": {"labels": node_labels(self.cfg)}},
                patch_type=PatchType.MERGE,
            )
            log.info("node %s exists; reusing it", self.cfg.node_name)
        assert node.metadata is not None
        self.node_uid = node.metadata.uid or ""
        await self.post_status()

    async def post_status(self) -> None:
        now = rfc3339()
        status = node_status(self.cfg, self.version, now, self._since)
        for c in status["conditions"]:
            self._since.setdefault(c["type"], c["lastTransitionTime"])
        await self.api.client.patch(
            NodeStatus, self.cfg.node_name, {"status": status}, patch_type=PatchType.MERGE
        )

    async def renew_lease(self) -> None:
        client = self.api.client
        spec = {
            "holderIdentity": self.cfg.node_name,
            "leaseDurationSeconds": self.cfg.timings.lease_duration,
            "renewTime": _micro_now(),
        }
        try:
            await client.patch(
                Lease,
                self.cfg.node_name,
                {"spec": spec},
                namespace=LEASE_NAMESPACE,
                patch_type=PatchType.MERGE,
            )
        except ApiError as e:
            if e.status.code != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.cfg.node_name,
                    "namespace": LEASE_NAMESPACE,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "name": self.cfg.node_name,
                            "uid": self.node_uid,
                        }
                    ],
                },
                "spec": spec,
            }
            await client.create(cast(Lease, Lease.from_dict(body)))

    async def pod_cidr(self) -> str:
        """Wait until the controller manager has given this node a pod CIDR."""
        while True:
            try:
                node = await self.api.client.get(Node, self.cfg.node_name)
                if node.spec is not None and node.spec.podCIDR:
                    return node.spec.podCIDR
            except (ApiError, httpx2.HTTPError) as e:
                log.warning("reading node %s: %s", self.cfg.node_name, e)
            await asyncio.sleep(self.cfg.timings.pod_cidr_poll)

    async def heartbeat(self) -> None:
        """Renew the Lease and the status forever (errors are logged and retried)."""
        t = self.cfg.timings
        loop = asyncio.get_running_loop()
        next_status = loop.time() + t.node_status
        while True:
            try:
                await self.renew_lease()
                if loop.time() >= next_status:
                    await self.post_status()
                    next_status = loop.time() + t.node_status
            except (ApiError, httpx2.HTTPError) as e:
                log.warning("node heartbeat failed: %s", e)
            await asyncio.sleep(t.lease_renew)
