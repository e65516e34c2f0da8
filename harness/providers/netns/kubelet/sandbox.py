"""Pod sandboxes: network namespace, veth, routes and ``/etc/netns`` files (IO).

Routing is point-to-point, as Calico does it, with no bridge: all pod traffic goes
through the node namespace so kube-proxy's iptables rules see both directions.
- pod ns: ``lo`` up, ``eth0`` with ``IP/32``, ``169.254.1.1 dev eth0 scope link``,
  ``default via 169.254.1.1``, and a permanent neighbour entry for 169.254.1.1 (the
  node ns has no default route, so proxy ARP alone would not answer for it);
- node ns: ``IP/32 dev v<hex>``, ``proxy_arp=1`` on the veth, which has the fixed
  MAC ``ee:ee:ee:ee:ee:ee`` on every pod.
Every step is idempotent: creating a sandbox first removes any leftover of the same
name; removing one ignores parts already gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.sh import CommandError, arun

log = logging.getLogger(__name__)

GATEWAY = "169.254.1.1"
NODE_VETH_MAC = "ee:ee:ee:ee:ee:ee"


@dataclass(frozen=True)
class Sandbox:
    """Where a pod's containers run: a netns (the node's for hostNetwork) and an address."""

    netns: str
    ip: str
    veth: str = ""
    host_network: bool = False


async def _ip(*args: str, check: bool = True, input: str | None = None) -> str:
    return await arun("ip", *args, check=check, input=input, timeout=30)


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


async def list_netns() -> list[str]:
    out = await _ip("netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


async def create_pod_network(node_netns: str, sandbox: Sandbox) -> None:
    """Create the pod's netns and wire it to the node namespace."""
    await remove_pod_network(node_netns, sandbox)
    ns, veth, ip = sandbox.netns, sandbox.veth, sandbox.ip
    await _ip("netns", "add", ns)
    await _ip(
        "-n",
        node_netns,
        "link",
        "add",
        veth,
        "address",
        NODE_VETH_MAC,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns,
    )
    await _ip(
        "-n",
        ns,
        "-batch",
        "-",
        input="\n".join(
            [
                "link set lo up",
                f"addr add {ip}/32 dev eth0",
                "link set eth0 up",
                f"route add {GATEWAY} dev eth0 scope link",
                f"route add default via {GATEWAY} dev eth0",
                f"neigh replace {GATEWAY} lladdr {NODE_VETH_MAC} dev eth0 nud permanent",
            ]
        )
        + "\n",
    )
    await arun(
        "ip",
        "netns",
        "exec",
        node_netns,
        "sysctl",
        "-q",
        "-w",
        f"net.ipv4.conf.{veth}.proxy_arp=1",
        f"net.ipv4.neigh.{veth}.proxy_delay=0",
        timeout=30,
    )
    await _ip(
        "-n",
        node_netns,
        "-batch",
        "-",
        input="\n".join(
            [
                f"link set {veth} up",
                f"route replace {ip}/32 dev {veth}",
            ]
        )
        + "\n",
    )


async def netns_pids(netns: str) -> list[int]:
    out = await arun("ip", "netns", "pids", netns, check=False, timeout=30)
    return [int(p) for p in out.split() if p.isdigit()]


async def kill_netns_processes(netns: str, attempts: int = 20) -> None:
    """SIGKILL everything still running in ``netns`` until nothing is left."""
    for _ in range(attempts):
        pids = [p for p in await netns_pids(netns) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
    log.warning("processes survive in netns %s: %s", netns, await netns_pids(netns))


async def remove_pod_network(node_netns: str, sandbox: Sandbox) -> None:
    """Remove the pod's netns, its veth and route; safe on a half-built or absent sandbox."""
    if sandbox.host_network:
        return
    if netns_exists(sandbox.netns):
        await kill_netns_processes(sandbox.netns)
    if sandbox.veth:
        with contextlib.suppress(CommandError):
            await _ip("-n", node_netns, "route", "del", f"{sandbox.ip}/32", "dev", sandbox.veth)
        with contextlib.suppress(CommandError):
            await _ip("-n", node_netns, "link", "del", sandbox.veth)
    if netns_exists(sandbox.netns):
        with contextlib.suppress(CommandError):
            await _ip("netns", "del", sandbox.netns)


def write_etc_files(etc_dir: Path, files: dict[str, str | None]) -> None:
    """Write ``/etc/netns/<netns>/*``; a None content removes that file."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = etc_dir / name
        if content is None:
            path.unlink(missing_ok=True)
            continue
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(content)
        tmp.chmod(0o644)
        tmp.replace(path)


def remove_etc_files(etc_dir: Path) -> None:
    shutil.rmtree(etc_dir, ignore_errors=True)


@dataclass(frozen=True)
class SandboxRecord:
    """What the state dir remembers about one sandbox (for restarts and debugging)."""

    uid: str
    namespace: str
    name: str
    netns: str
    ip: str
    veth: str

    def sandbox(self) -> Sandbox:
        return Sandbox(self.netns, self.ip, self.veth)


class SandboxRecords:
    """``DIR/netns/<netns>.json``: one file per pod sandbox this kubelet created."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "netns"

    def save(self, record: SandboxRecord) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{record.netns}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=1))
        tmp.replace(path)

    def remove(self, netns: str) -> None:
        (self.dir / f"{netns}.json").unlink(missing_ok=True)

    def load_all(self) -> list[SandboxRecord]:
        out: list[SandboxRecord] = []
        if not self.dir.is_dir():
            return out
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append(SandboxRecord(**json.loads(path.read_text())))
            except (ValueError, TypeError):
                log.warning("ignoring unreadable sandbox record %s", path)
        return out
