"""Pure naming functions: network namespaces, veths, container ids and state paths.

Every name is derived from the pod uid so a restarted kubelet finds what an earlier
run created; the netns name can be mapped back to the uid prefix it came from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: how many characters of the pod uid a netns name keeps.
UID_CHARS = 12
CONTAINER_ID_SCHEME = "isthmus://"


def pod_netns(prefix: str, uid: str) -> str:
    """The network namespace of pod ``uid``: ``<prefix>-<first 12 chars of uid>``."""
    return f"{prefix}-{uid[:UID_CHARS]}"


def uid_prefix_of_netns(prefix: str, netns: str) -> str | None:
    """Inverse of :func:`pod_netns`: the uid prefix, or None when ``netns`` is not a pod's."""
    head = f"{prefix}-"
    if not netns.startswith(head):
        return None
    rest = netns[len(head) :]
    if len(rest) != UID_CHARS or any(c not in "0123456789abcdef-" for c in rest):
        return None
    return rest


def node_veth(uid: str) -> str:
    """The node-side veth of pod ``uid``: ``v`` and 10 hex digits (fits IFNAMSIZ)."""
    return "v" + hashlib.sha256(uid.encode()).hexdigest()[:10]


def container_id(pid: int) -> str:
    """The containerID reported for a container process."""
    return f"{CONTAINER_ID_SCHEME}{pid}"


def pid_of_container_id(cid: str) -> int | None:
    """Inverse of :func:`container_id`."""
    if not cid.startswith(CONTAINER_ID_SCHEME):
        return None
    tail = cid[len(CONTAINER_ID_SCHEME) :]
    return int(tail) if tail.isdigit() else None


def pod_dir(state_dir: Path, uid: str) -> Path:
    """Everything the kubelet keeps for one pod lives under this directory."""
    return state_dir / "pods" / uid


def volume_dir(state_dir: Path, uid: str, volume: str) -> Path:
    return pod_dir(state_dir, uid) / "volumes" / volume


def log_path(state_dir: Path, uid: str, container: str, restart_count: int) -> Path:
    """``DIR/pods/<uid>/logs/<container>/<restartCount>.log``."""
    return pod_dir(state_dir, uid) / "logs" / container / f"{restart_count}.log"


def scratch_dir(state_dir: Path, uid: str, container: str, restart_count: int) -> Path:
    """Overlay upper/work directories of one container start."""
    return pod_dir(state_dir, uid) / "scratch" / f"{container}-{restart_count}"


def etc_netns_dir(netns: str, root: Path = Path("/etc/netns")) -> Path:
    """Where ``ip netns exec`` looks for files to bind over ``/etc``."""
    return root / netns
