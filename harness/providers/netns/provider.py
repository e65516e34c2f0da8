"""The netns provider: brings a topology up on this host and tears it down leaving nothing.

State lives in ``state_dir`` (``state.json``, per-cluster PKI, logs, etcd data). Only one
netns run may be active on a host at a time: the underlay address plan is shared.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml
from lightkube import Client
from lightkube.resources.core_v1 import Node

from harness.providers.base import Cluster, ProviderError
from harness.providers.netns import bootstrap, daemons, network
from harness.providers.netns.controlplane import ClusterFiles, ControlPlane
from harness.providers.netns.network import Names, NodeNet
from harness.settings import TIMEOUTS
from harness.sh import run
from harness.topology import ClusterSpec, Topology
from harness.upstream import build

STATE_ROOT = Path(os.environ.get("ISTHMUS_STATE_ROOT", "/run/isthmus"))


def _echo(msg: str) -> None:
    print(f"[netns] {msg}", file=sys.stderr, flush=True)


class NetnsProvider:
    name = "netns"

    def __init__(self, state_dir: Path, progress: Callable[[str], None] = _echo) -> None:
        self.state_dir = state_dir
        self.progress = progress

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _state(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {}
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def _save(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.rename(self.state_file)

    # -- up ---------------------------------------------------------------------------------

    def up(self, topology: Topology) -> list[Cluster]:
        if os.geteuid() != 0:
            raise ProviderError("the netns provider needs root (network namespaces, iptables)")
        for tool in ("ip", "iptables", "conntrack"):
            if shutil.which(tool) is None:
                raise ProviderError(f"`{tool}` is missing; ./run installs it (apt-get install)")
        self._refuse_concurrent_run(topology)
        versions = sorted({c.version for c in topology.clusters})
        bins = {v: build(v, progress=self.progress) for v in versions}
        names = Names(secrets.token_hex(2))
        self._save(
            {
                "rid": names.rid,
                "topology": topology.name,
                "clusters": [],
                "host_pids": [],
                "ranges": _ranges(topology),
            }
        )
        started = time.monotonic()
        try:
            clusters = self._up(topology, names, bins)
        except BaseException:
            if os.environ.get("ISTHMUS_KEEP_ON_FAILURE"):
                self.progress(f"bring-up failed; state kept in {self.state_dir} for inspection")
            else:
                self.progress("bring-up failed; tearing down what was created")
                self.down()
            raise
        self.progress(
            f"{topology.name} up in {time.monotonic() - started:.1f}s "
            f"(kubeconfig: {self.state_dir / 'kubeconfig'})"
        )
        return clusters

    def _refuse_concurrent_run(self, topology: Topology) -> None:
        """Runs may share a host only when their address ranges are disjoint."""
        if self._state():
            raise ProviderError(
                f"a netns run already has state in {self.state_dir}; tear it down first "
                f"(python -m harness clusters down --state-dir {self.state_dir})"
            )
        mine = [ipaddress.IPv4Network(r) for r in _ranges(topology)]
        for other in STATE_ROOT.rglob("state.json") if STATE_ROOT.exists() else []:
            if other.parent == self.state_dir:
                continue
            theirs = json.loads(other.read_text()).get("ranges", [])
            clash = [
                (a, b) for a in mine for b in map(ipaddress.IPv4Network, theirs) if a.overlaps(b)
            ]
            if clash:
                raise ProviderError(
                    f"another netns run (state in {other.parent}) uses {clash[0][1]}, which "
                    f"overlaps {clash[0][0]} of {topology.name}; tear it down first: "
                    f"python -m harness clusters down --state-dir {other.parent}"
                )

    def _up(self, topology: Topology, names: Names, bins: dict[str, Any]) -> list[Cluster]:
        network.create_bridge(names, topology.underlay)
        self.progress(f"underlay bridge {names.bridge} on {topology.underlay}")
        nodes: dict[str, list[NodeNet]] = {}
        index = 0
        for spec in topology.clusters:
            nodes[spec.name] = []
            for k in range(spec.nodes):
                nodes[spec.name].append(
                    network.create_node(
                        names, spec.name, k, index, topology.underlay, spec.service_cidr
                    )
                )
                index += 1
        planes = {
            spec.name: ControlPlane(
                spec,
                nodes[spec.name][0],
                ClusterFiles(self.state_dir / spec.name),
                bins[spec.version],
                self.progress,
            )
            for spec in topology.clusters
        }
        with ThreadPoolExecutor(max_workers=len(planes)) as pool:
            list(pool.map(lambda p: p.start(), planes.values()))
        clusters = []
        for spec in topology.clusters:
            plane = planes[spec.name]
            with closing(plane.admin_client()) as client:
                bootstrap.apply(client, spec, plane.node.ip)
            plane.start_coredns()
            for k, node in enumerate(nodes[spec.name]):
                self._start_node(names, spec, plane, node, self._node_name(spec, k))
            self._spawn_host(
                plane,
                "lb",
                [
                    "-m",
                    "harness.providers.netns.lb",
                    "--kubeconfig",
                    str(plane.files.admin_kubeconfig),
                    "--ip",
                    plane.node.ip,
                ],
            )
            clusters.append(
                Cluster(
                    name=spec.name,
                    domain=spec.domain,
                    trust_domain=spec.trust_domain,
                    kubeconfig=plane.files.admin_kubeconfig,
                    context=spec.name,
                    api_server=plane.server,
                    node_ips=tuple(n.ip for n in nodes[spec.name]),
                    pod_cidr=str(spec.pod_cidr),
                    service_cidr=str(spec.service_cidr),
                    version=spec.version,
                    extra={
                        "provider": "netns",
                        "rid": names.rid,
                        "node_netns": ",".join(n.netns for n in nodes[spec.name]),
                        "logs": str(plane.files.logs),
                        "state_dir": str(self.state_dir),
                    },
                )
            )
            self._record(clusters)
        pod_cidrs: dict[str, dict[str, str]] = {
            spec.name: self._wait_nodes(planes[spec.name], spec, nodes[spec.name])
            for spec in topology.clusters
        }
        self._route(topology, nodes, pod_cidrs)
        self._merged_kubeconfig(clusters)
        return clusters

    @staticmethod
    def _node_name(spec: ClusterSpec, k: int) -> str:
        return f"{spec.name}-node{k}"

    def _spawn_host(self, plane: ControlPlane, name: str, args: list[str]) -> None:
        pid = daemons.spawn(name, [sys.executable, *args], plane.files.logs)
        state = self._state()
        state["host_pids"] = [*state.get("host_pids", []), pid]
        self._save(state)

    def _start_node(
        self, names: Names, spec: ClusterSpec, plane: ControlPlane, node: NodeNet, node_name: str
    ) -> None:
        plane.start_proxy(node, node_name)
        kubelet_dir = plane.files.root / f"kubelet-{node_name}"
        self._spawn_host(
            plane,
            f"kubelet-{node_name}",
            [
                "-m",
                "harness.providers.netns.kubelet",
                "--kubeconfig",
                str(plane.node_kubeconfig(node_name)),
                "--node-name",
                node_name,
                "--node-ip",
                node.ip,
                "--node-netns",
                node.netns,
                "--cluster-name",
                spec.name,
                "--cluster-domain",
                spec.domain,
                "--dns-ip",
                str(spec.dns_ip),
                "--state-dir",
                str(kubelet_dir),
                "--netns-prefix",
                f"{names.pod_prefix}{node.veth.rsplit('n', 1)[1]}",
                "--bin-dir",
                str(Path(sys.executable).parent),
                *[f"--upstream-dir={n}={d}" for n, d in plane.bins.image_dirs().items()],
            ],
        )
        self.progress(f"{spec.name}: kube-proxy and kubelet stand-in started on {node_name}")

    def _record(self, clusters: list[Cluster]) -> None:
        state = self._state()
        state["clusters"] = [c.to_dict() for c in clusters]
        self._save(state)

    def _wait_nodes(
        self, plane: ControlPlane, spec: ClusterSpec, nodes: list[NodeNet]
    ) -> dict[str, str]:
        """Wait for every node Ready with a podCIDR; return node IP -> podCIDR."""
        with closing(plane.admin_client()) as client:
            return self._wait_nodes_with(client, plane, spec, nodes)

    def _wait_nodes_with(
        self, client: Client, plane: ControlPlane, spec: ClusterSpec, nodes: list[NodeNet]
    ) -> dict[str, str]:
        deadline = time.monotonic() + TIMEOUTS.nodes_ready
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            seen = {}
            for n in client.list(Node):
                ready = (
                    any(
                        c.type == "Ready" and c.status == "True"
                        for c in (n.status.conditions or [])
                    )
                    if n.status
                    else False
                )
                ip = (
                    next(
                        (a.address for a in (n.status.addresses or []) if a.type == "InternalIP"),
                        None,
                    )
                    if n.status
                    else None
                )
                if ready and ip and n.spec and n.spec.podCIDR:
                    seen[ip] = n.spec.podCIDR
            if len(seen) == len(nodes):
                self.progress(f"{spec.name}: {len(nodes)} node(s) Ready ({seen})")
                return seen
            time.sleep(0.5)
        logs = "\n".join(
            daemons.log_tail(plane.files.logs, f"kubelet-{self._node_name(spec, k)}")
            for k in range(len(nodes))
        )
        raise ProviderError(
            f"[{spec.name}] nodes not Ready with a podCIDR within {TIMEOUTS.nodes_ready:.0f}s "
            f"(ready: {seen or 'none'}); kubelet log tail:\n{logs}"
        )

    def _route(
        self,
        topology: Topology,
        nodes: dict[str, list[NodeNet]],
        pod_cidrs: dict[str, dict[str, str]],
    ) -> None:
        """Pod routes: host -> every node; node -> same-cluster nodes; flat: node -> all nodes."""
        for cluster, cidrs in pod_cidrs.items():
            for ip, cidr in cidrs.items():
                network.add_route(None, cidr, ip)
                for other, members in nodes.items():
                    if other != cluster and topology.network != "flat":
                        continue
                    for node in members:
                        if node.ip != ip:
                            network.add_route(node.netns, cidr, ip)
        for spec in topology.clusters:
            routed = [
                str(c.pod_cidr)
                for c in topology.clusters
                if c.name == spec.name or topology.network == "flat"
            ]
            for node in nodes[spec.name]:
                network.masquerade(node.netns, str(spec.pod_cidr), routed)
        self.progress(f"routes programmed ({topology.network} network)")

    def _merged_kubeconfig(self, clusters: list[Cluster]) -> None:
        merged: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [],
            "users": [],
            "contexts": [],
        }
        for c in clusters:
            one = yaml.safe_load(c.kubeconfig.read_text())
            for key in ("clusters", "users", "contexts"):
                merged[key] += one[key]
        merged["current-context"] = clusters[0].context
        path = self.state_dir / "kubeconfig"
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
        path.chmod(0o600)

    # -- down -------------------------------------------------------------------------------

    def clusters(self) -> list[Cluster]:
        return [Cluster.from_dict(c) for c in self._state().get("clusters", [])]

    def down(self) -> None:
        state = self._state()
        if not state:
            self.progress(f"nothing to tear down in {self.state_dir}")
            return
        names = Names(state["rid"])
        started = time.monotonic()
        # The kubelets get a moment to stop their pods cleanly; the rest is disposable.
        network.kill_pids(list(state.get("host_pids", [])), TIMEOUTS.teardown_grace)
        network.teardown(names.prefix, names.bridge, TIMEOUTS.teardown_grace)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        daemons.reap()
        self.progress(f"run {names.rid} torn down in {time.monotonic() - started:.1f}s")


def _ranges(topology: Topology) -> list[str]:
    return [str(topology.underlay)] + [
        str(r) for c in topology.clusters for r in (c.pod_cidr, c.service_cidr)
    ]


def leftovers(rid: str, state_dir: Path) -> list[str]:
    """Everything of run ``rid`` still on the host (empty when teardown was complete)."""
    names = Names(rid)
    found = [f"netns {n}" for n in network.netns_list(names.prefix)]
    found += [f"link {n}" for n in network.links(names.bridge)]
    if network.ETC_NETNS.exists():
        found += [
            f"/etc/netns/{d.name}"
            for d in network.ETC_NETNS.iterdir()
            if d.name.startswith(names.prefix)
        ]
    routes = run("ip", "route", "show")
    found += [f"route {r}" for r in routes.splitlines() if names.bridge in r]
    rules = run("iptables-save", check=False)
    found += [f"iptables {r}" for r in rules.splitlines() if names.bridge in r or names.prefix in r]
    mounts = Path("/proc/mounts").read_text()
    found += [
        f"mount {m.split()[1]}"
        for m in mounts.splitlines()
        if str(state_dir) in m or names.prefix in m
    ]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name != str(os.getpid()) and (str(state_dir) in cmd or names.prefix in cmd):
            found.append(f"process {proc.name}: {cmd[:120]}")
    if state_dir.exists():
        found.append(f"state dir {state_dir}")
    return found
