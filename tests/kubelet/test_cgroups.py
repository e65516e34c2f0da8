"""Limits to cgroup v2 settings, host detection and the per-container plan."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from harness.providers.netns.kubelet.cgroups import (
    BadQuantity,
    CgroupV2,
    Limits,
    cgroup_v2_problem,
    limits_of,
    parse_quantity,
    place,
)
from harness.providers.netns.kubelet.kobjects import Container


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("128Mi", Decimal(128 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("100M", Decimal(10**8)),
        ("1e3", Decimal(1000)),
        (3, Decimal(3)),
    ],
)
def test_quantities(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1", "1Zi", "NaN"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(BadQuantity):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({}, Limits()),
        ({"cpu": "250m"}, Limits(cpu_max="25000 100000")),
        ({"cpu": "2", "memory": "64Mi"}, Limits("200000 100000", str(64 * 2**20))),
        ({"cpu": "1m"}, Limits(cpu_max="1000 100000")),  # cgroup v2's 1 ms floor
    ],
)
def test_limits_of_container(limits: dict[str, str], expected: Limits) -> None:
    c: Container = {"name": "app", "resources": {"limits": limits, "requests": {"cpu": "9"}}}
    assert limits_of(c) == expected


ROOT = Path("/sys/fs/cgroup")
V1_MOUNTS = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw 0 0\n"
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"


def test_cgroup_v1_host_is_reported() -> None:
    problem = cgroup_v2_problem(ROOT, V1_MOUNTS)
    assert problem is not None
    assert "not cgroup v2" in problem


def test_unmounted_root_is_reported() -> None:
    assert "not mounted" in (cgroup_v2_problem(ROOT, "") or "")


def test_v2_without_memory_controller_is_reported(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io pids\n")
    mounts = f"cgroup2 {tmp_path} cgroup2 rw 0 0\n"
    assert "does not delegate memory" in (cgroup_v2_problem(tmp_path, mounts) or "")


def test_v2_with_controllers_is_usable(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert cgroup_v2_problem(tmp_path, f"cgroup2 {tmp_path} cgroup2 rw 0 0\n") is None


def test_place_writes_the_limits_and_enables_controllers(tmp_path: Path) -> None:
    manager = CgroupV2(tmp_path, "node0")
    c: Container = {"name": "app", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}
    placed = place(manager, "", "uid-1", c, 2)
    assert placed.warning == ""
    assert placed.cgroup == tmp_path / "isthmus" / "node0" / "uid-1" / "app-2"
    assert (placed.cgroup / "cpu.max").read_text() == "50000 100000"
    assert (placed.cgroup / "memory.max").read_text() == str(2**30)
    for d in (tmp_path, tmp_path / "isthmus", tmp_path / "isthmus" / "node0"):
        assert (d / "cgroup.subtree_control").read_text() == "+cpu +memory"
    CgroupV2.enter(placed.cgroup, 4242)
    assert (placed.cgroup / "cgroup.procs").read_text() == "4242"


def test_place_without_limits_needs_no_cgroup(tmp_path: Path) -> None:
    placed = place(CgroupV2(tmp_path, "n"), "", "uid", {"name": "app"}, 0)
    assert placed.cgroup is None
    assert placed.warning == ""
    assert not (tmp_path / "isthmus").exists()


def test_place_on_a_host_without_v2_warns_with_the_reason() -> None:
    c: Container = {"name": "app", "resources": {"limits": {"memory": "64Mi"}}}
    placed = place(None, "/sys/fs/cgroup is a tmpfs mount (cgroup v1 host?)", "uid", c, 0)
    assert placed.cgroup is None
    assert "limits of container app not enforced" in placed.warning
    assert "cgroup v1 host" in placed.warning


def test_place_warns_when_the_cgroup_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    c: Container = {"name": "app", "resources": {"limits": {"cpu": "1"}}}
    placed = place(CgroupV2(blocker, "n"), "", "uid", c, 0)
    assert placed.cgroup is None
    assert "not enforced" in placed.warning


def test_remove_pod_cgroup_removes_empty_children(tmp_path: Path) -> None:
    manager = CgroupV2(tmp_path, "n")
    pod = manager.base / "uid"
    (pod / "a-0").mkdir(parents=True)
    manager.remove("uid")
    assert not pod.exists()


def test_join_moves_an_exec_into_its_containers_cgroup_only(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    manager = CgroupV2(root, "n")
    group = manager.base / "uid" / "app-0"
    group.mkdir(parents=True)
    proc = tmp_path / "proc"
    (proc / "10").mkdir(parents=True)
    (proc / "10" / "cgroup").write_text("0::/isthmus/n/uid/app-0\n")
    (proc / "11").mkdir()
    (proc / "11" / "cgroup").write_text("0::/user.slice\n")
    assert manager.join(10, 99, proc)
    assert (group / "cgroup.procs").read_text() == "99"
    assert not manager.join(11, 98, proc)  # not a container cgroup of ours
    assert not manager.join(12, 97, proc)  # leader gone
