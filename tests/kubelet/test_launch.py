"""The launcher's pure path logic (the mounting itself is covered by test_netns_pod)."""

from __future__ import annotations

from pathlib import Path

from harness.providers.netns.kubelet.launch import _ancestors, _top_level, split_existing


def test_split_existing_resolves_symlinks_and_returns_the_missing_rest(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    existing, missing = split_existing(str(tmp_path / "link" / "a" / "b"))
    assert existing == str((tmp_path / "real").resolve())
    assert missing == ["a", "b"]
    assert split_existing(str(tmp_path)) == (str(tmp_path.resolve()), [])


def test_top_level_mount_points_cover_nested_ones() -> None:
    points = ["/", "/proc", "/proc/sys", "/sys", "/run", "/run/netns/x", "/etc/resolv.conf"]
    assert sorted(_top_level(points)) == ["/etc/resolv.conf", "/proc", "/run", "/sys"]


def test_ancestors_include_symlink_targets(tmp_path: Path) -> None:
    (tmp_path / "opt" / "bin").mkdir(parents=True)
    (tmp_path / "opt" / "bin" / "python3").touch()
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "python").symlink_to(tmp_path / "opt" / "bin" / "python3")
    dirs = _ancestors([str(tmp_path / "venv" / "python")])
    root = str(tmp_path.resolve())
    assert f"{root}/venv" in dirs
    assert f"{root}/opt/bin" in dirs
    assert dirs.index(f"{root}/opt") < dirs.index(f"{root}/opt/bin")
