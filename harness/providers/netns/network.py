"""The underlay: one host bridge, a network namespace per node, and the routes between them.

Naming rules (everything a run creates carries its prefix, so teardown can find it):
  bridge            isth<rid>              (host)
  node namespace    isth-<rid>-<cluster>-<k>
  node veth (host)  isth<rid>n<i>          (renamed eth0 inside the node namespace)
  pod namespaces    isth-<rid>-p-...       (made by the kubelet stand-in)
Node namespaces get no default route: nothing a pod sends can leave the machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from harness.sh import CommandError, netns_run, run

NETNS_DIR = Path("/var/run/netns")
ETC_NETNS = Path("/etc/netns")


@dataclass(frozen=True)
class Names:
    rid: str

    @property
    def prefix(self) -> str:
        return f"isth-{self.rid}"

    @property
    def bridge(self) -> str:
        return f"isth{self.rid}"

    def node_ns(self, cluster: str, k: int) -> str:
        return f"{self.prefix}-{cluster}-{k}"

    def node_veth(self, index: int) -> str:
        return f"isth{self.rid}n{index}"

    @property
    def pod_prefix(self) -> str:
        return f"{self.prefix}-p"


@dataclass(frozen=True)
class NodeNet:
    netns: str
    ip: str
    veth: str


def _sysctl(netns: str, key: str, value: str) -> None:
    netns_run(netns, "sysctl", "-qw", f"{key}={value}")


def create_bridge(names: Names, underlay: ipaddress.IPv4Network) -> str:
    """Create the host bridge with the first underlay address; return that address."""
    host_ip = str(underlay.network_address + 1)
    run("ip", "link", "add", names.bridge, "type", "bridge")
    run("ip", "addr", "add", f"{host_ip}/{underlay.prefixlen}", "dev", names.bridge)
    run("ip", "link", "set", names.bridge, "up")
    return host_ip


def create_node(
    names: Names,
    cluster: str,
    k: int,
    index: int,
    underlay: ipaddress.IPv4Network,
    service_cidr: ipaddress.IPv4Network,
) -> NodeNet:
    """A node namespace attached to the bridge at underlay address ``10 + index``.

    The service CIDR gets an on-link route so the node's own processes (the API server
    calling webhooks, hostNetwork pods) can dial ClusterIPs; kube-proxy DNATs them.
    """
    ns = names.node_ns(cluster, k)
    ip = str(underlay.network_address + 10 + index)
    veth, peer = names.node_veth(index), f"isth{names.rid}m{index}"
    run("ip", "netns", "add", ns)
    run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
    run("ip", "link", "set", peer, "netns", ns)
    run("ip", "link", "set", veth, "master", names.bridge, "up")
    netns_run(ns, "ip", "link", "set", peer, "name", "eth0")
    netns_run(ns, "ip", "addr", "add", f"{ip}/{underlay.prefixlen}", "dev", "eth0")
    netns_run(ns, "ip", "link", "set", "eth0", "up")
    netns_run(ns, "ip", "link", "set", "lo", "up")
    netns_run(ns, "ip", "route", "add", str(service_cidr), "dev", "eth0")
    for key, value in (
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.all.route_localnet", "1"),
    ):
        _sysctl(ns, key, value)
    return NodeNet(ns, ip, veth)


def add_route(netns: str | None, cidr: str, via: str) -> None:
    """Route ``cidr`` via ``via`` in ``netns`` (or on the host when None); idempotent."""
    argv = ["ip", "route", "replace", cidr, "via", via]
    if netns is None:
        run(*argv)
    else:
        netns_run(netns, *argv)


def masquerade(netns: str, pod_cidr: str, routed: list[str]) -> None:
    """SNAT pod traffic leaving the node to anything but routed pod CIDRs (ip-masq-agent).

    Off-cluster replies (e.g. from a LoadBalancer in a hierarchical network) can then find
    their way back; pod-to-pod traffic across a flat network keeps its pod addresses.
    """
    chain = "ISTHMUS-MASQ"
    netns_run(netns, "iptables", "-t", "nat", "-N", chain)
    for cidr in routed:
        netns_run(netns, "iptables", "-t", "nat", "-A", chain, "-d", cidr, "-j", "RETURN")
    netns_run(netns, "iptables", "-t", "nat", "-A", chain, "-s", pod_cidr, "-j", "MASQUERADE")
    netns_run(netns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", chain)


def netns_list(prefix: str) -> list[str]:
    if not NETNS_DIR.exists():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def netns_pids(netns: str) -> list[int]:
    try:
        out = run("ip", "netns", "pids", netns, check=False)
    except CommandError:
        return []
    return [int(p) for p in out.split()]


def kill_pids(pids: list[int], timeout: float) -> list[int]:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; return what was still alive at the end."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            if not pids:
                return []
            time.sleep(0.1)
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours is as good as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def teardown(prefix: str, bridge_prefix: str, timeout: float) -> None:
    """Kill every process in every namespace with ``prefix`` and delete all of the run's links."""
    spaces = netns_list(prefix)
    pids = sorted({p for ns in spaces for p in netns_pids(ns)})
    kill_pids(pids, timeout)
    for ns in spaces:
        run("ip", "netns", "del", ns, check=False)
    for link in links(bridge_prefix):
        run("ip", "link", "del", link, check=False)
    if ETC_NETNS.exists():
        for d in ETC_NETNS.iterdir():
            if d.name.startswith(prefix):
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()


def links(prefix: str) -> list[str]:
    out = run("ip", "-o", "link", "show")
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith(prefix)]
