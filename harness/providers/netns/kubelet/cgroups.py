"""Containers' CPU and memory limits, enforced with cgroup v2 where the host allows it.

Rules:
- Limits come from ``resources.limits`` (``cpu`` in cores or millicores, ``memory``
  in bytes with the Kubernetes suffixes); requests are not enforced.
- cgroup v2 is usable when ``/sys/fs/cgroup`` is a ``cgroup2`` mount whose
  ``cgroup.controllers`` offers ``cpu`` and ``memory`` and that we may write to. Each
  container instance then gets ``<root>/isthmus/<node>/<pod uid>/<container>-<n>``
  with ``cpu.max`` and ``memory.max`` written and its leader moved in right after it
  was spawned (so whatever it starts stays inside); the directory is removed when
  the instance exits.
- Anywhere else (cgroup v1 hosts, containers in containers) nothing is enforced and
  the pod gets a ``ResourceLimitsNotEnforced`` Warning event naming the reason; the
  container still runs.
- The quantity parsing and the plan are pure; only :class:`CgroupV2` touches files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from harness.providers.netns.kubelet.kobjects import Container

log = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000
#: cgroup v2 refuses a cpu.max quota below 1 ms per period.
MIN_QUOTA_US = 1000
NOT_ENFORCED_REASON = "ResourceLimitsNotEnforced"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)}
_DECIMAL |= {"k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9)}
_DECIMAL |= {"T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}


class BadQuantity(ValueError):
    pass


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes quantity (``500m``, ``1.5``, ``128Mi``, ``1e3``) as a number."""
    raw = str(text).strip()
    for suffix, factor in _BINARY.items():
        if raw.endswith(suffix):
            return _number(raw[: -len(suffix)], raw) * factor
    for suffix in sorted(_DECIMAL, key=len, reverse=True):
        if suffix and raw.endswith(suffix):
            return _number(raw[: -len(suffix)], raw) * _DECIMAL[suffix]
    return _number(raw, raw)


def _number(digits: str, whole: str) -> Decimal:
    try:
        value = Decimal(digits)
    except InvalidOperation:
        raise BadQuantity(f"{whole!r} is not a Kubernetes quantity") from None
    if not value.is_finite() or value < 0:
        raise BadQuantity(f"{whole!r} is not a Kubernetes quantity")
    return value


@dataclass(frozen=True)
class Limits:
    """What a container may use: ``cpu.max`` and ``memory.max`` lines (None: unlimited)."""

    cpu_max: str | None = None
    memory_max: str | None = None

    @property
    def any(self) -> bool:
        return self.cpu_max is not None or self.memory_max is not None


def limits_of(container: Container) -> Limits:
    """The cgroup settings for a container's ``resources.limits``."""
    limits = (container.get("resources") or {}).get("limits") or {}
    cpu_max = memory_max = None
    if "cpu" in limits:
        cores = parse_quantity(limits["cpu"])
        quota = max(MIN_QUOTA_US, int(cores * CPU_PERIOD_US))
        cpu_max = f"{quota} {CPU_PERIOD_US}"
    if "memory" in limits:
        memory_max = str(int(parse_quantity(limits["memory"])))
    return Limits(cpu_max, memory_max)


def cgroup_v2_problem(root: Path, mounts: str) -> str | None:
    """Why ``root`` cannot hold container limits (None: it can)."""
    fstype = next(
        (f[2] for line in mounts.splitlines() if len(f := line.split()) >= 3 and f[1] == str(root)),
        None,
    )
    if fstype != "cgroup2":
        kind = "not mounted" if fstype is None else f"a {fstype} mount (cgroup v1 host?)"
        return f"{root} is {kind}, not cgroup v2"
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError as e:
        return f"cannot read {root / 'cgroup.controllers'}: {e}"
    missing = [c for c in ("cpu", "memory") if c not in controllers]
    if missing:
        return f"cgroup v2 at {root} does not delegate {', '.join(missing)}"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable by the kubelet"
    return None


class CgroupV2:
    """Per-container cgroups under ``<root>/isthmus/<node>`` (see the module rules)."""

    def __init__(self, root: Path, node: str) -> None:
        self.root = root
        self.base = root / "isthmus" / node

    @classmethod
    def detect(cls, node: str, root: Path = Path("/sys/fs/cgroup")) -> tuple[CgroupV2 | None, str]:
        """The manager, or None and the reason limits cannot be enforced here."""
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError as e:
            return None, f"cannot read /proc/self/mounts: {e}"
        problem = cgroup_v2_problem(root, mounts)
        return (None, problem) if problem else (cls(root, node), "")

    def _enable(self, directory: Path) -> None:
        """Let ``directory``'s children use the cpu and memory controllers."""
        (directory / "cgroup.subtree_control").write_text("+cpu +memory")

    def create(self, pod_uid: str, name: str, limits: Limits) -> Path:
        """The cgroup for one container instance, limits written; raises OSError."""
        path = self.base / pod_uid / name
        chain = [self.root / "isthmus", self.base, self.base / pod_uid]
        self._enable(self.root)
        for directory in chain:
            directory.mkdir(exist_ok=True)
            self._enable(directory)
        path.mkdir(exist_ok=True)
        if limits.cpu_max is not None:
            (path / "cpu.max").write_text(limits.cpu_max)
        if limits.memory_max is not None:
            (path / "memory.max").write_text(limits.memory_max)
            with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
                (path / "memory.swap.max").write_text("0")
        return path

    @staticmethod
    def enter(path: Path, pid: int) -> None:
        (path / "cgroup.procs").write_text(str(pid))

    def join(self, leader: int, pid: int, proc: Path = Path("/proc")) -> bool:
        """Move ``pid`` into the cgroup of ``leader`` when that is one of ours (exec'd
        commands count against their container's limits); whether it was moved."""
        try:
            lines = (proc / str(leader) / "cgroup").read_text().splitlines()
        except OSError:
            return False
        unified = next((line[3:] for line in lines if line.startswith("0::")), "")
        path = self.root / unified.lstrip("/")
        if not unified or not path.is_relative_to(self.base):
            return False
        try:
            self.enter(path, pid)
        except OSError as e:
            log.warning("exec'd pid %d not moved into %s: %s", pid, path, e)
            return False
        return True

    def remove(self, pod_uid: str, name: str | None = None) -> None:
        """Remove a container's cgroup (or, without ``name``, the pod's), if empty."""
        target = self.base / pod_uid if name is None else self.base / pod_uid / name
        if name is None and target.is_dir():
            for child in target.iterdir():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
        with contextlib.suppress(OSError):
            target.rmdir()


@dataclass(frozen=True)
class Placement:
    """Where one container instance runs: its cgroup (None: unconstrained) and why."""

    cgroup: Path | None
    #: a Warning for the pod when its limits are not enforced ("" when they are or none)
    warning: str = ""


def place(
    manager: CgroupV2 | None, problem: str, pod_uid: str, container: Container, instance: int
) -> Placement:
    """Create the instance's cgroup, or say why its limits go unenforced."""
    name = container.get("name", "")
    try:
        limits = limits_of(container)
    except BadQuantity as e:
        return Placement(None, f"limits of container {name} not enforced: {e}")
    if not limits.any:
        return Placement(None)
    if manager is None:
        return Placement(None, f"cpu/memory limits of container {name} not enforced: {problem}")
    try:
        return Placement(manager.create(pod_uid, f"{name}-{instance}", limits))
    except OSError as e:
        return Placement(None, f"cpu/memory limits of container {name} not enforced: {e}")
