"""harness.upstream: version pins, cache keys and the go build driver (with a fake `go`)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from harness import upstream

ENV = {"PATH": os.environ["PATH"]}


def _fake_go(tmp_path: Path, stderr: str, code: int) -> list[str]:
    script = tmp_path / "go"
    script.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{stderr}EOF\nexit {code}\n")
    script.chmod(0o755)
    return [str(script), "build"]


def test_go_build_reports_compiled_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream, "REPORT_EVERY", 0.0)
    seen: list[str] = []
    cmd = _fake_go(tmp_path, "k8s.io/a\nk8s.io/b\ngo.etcd.io/c\n", 0)
    upstream._go_build(cmd, tmp_path, ENV, "kube-x", seen.append)
    assert seen[-1].startswith("  kube-x: 3 packages compiled so far"), seen


def test_go_build_failure_shows_the_compiler_output(tmp_path: Path) -> None:
    cmd = _fake_go(tmp_path, "k8s.io/a\n# k8s.io/b\nb.go:3:1: undefined: x\n", 1)
    with pytest.raises(RuntimeError, match=r"(?s)building kube-x .* failed.*b.go:3:1: undefined"):
        upstream._go_build(cmd, tmp_path, ENV, "kube-x", lambda _: None)


def test_every_pin_has_a_wrapper_module_and_a_stable_key() -> None:
    for pin in upstream.KNOWN_VERSIONS.values():
        comps = upstream.components(pin.version)
        assert [c.name for c in comps] == ["k8s", "etcd", "coredns", "podinfo"]
        k8s = comps[0]
        assert f"require k8s.io/kubernetes {pin.version}" in (k8s.module_dir / "go.mod").read_text()
        assert k8s.key.startswith(f"{pin.version}-")
        assert f"gitVersion={pin.version}" in k8s.ldflags


def test_podinfo_is_pinned_with_its_cli_and_ui() -> None:
    podinfo = upstream.components()[-1]
    assert podinfo.name == "podinfo"
    assert set(podinfo.packages) == {"podinfo", "podcli"}
    assert podinfo.assets == ((upstream.PODINFO_MODULE, "ui"),)
    assert podinfo.version.startswith("v1.8.1-0.20250910200901-e86405a8674e")
    bins = upstream.Binaries({"k8s": Path("/k"), "podinfo": Path("/p")})
    assert bins.image_dirs() == {"podinfo": Path("/p")}


def test_assets_are_copied_from_the_module_cache_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "mod"
    (module / "ui").mkdir(parents=True)
    (module / "ui" / "vue.html").write_text("<html/>")
    (module / "ui" / "vue.html").chmod(0o444)
    go = tmp_path / "go"
    go.write_text(f"#!/bin/sh\necho {module}\n")
    go.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    upstream._copy_asset(tmp_path, env, "example.com/m", "ui", tmp_path / "out" / "ui")
    copied = tmp_path / "out" / "ui" / "vue.html"
    assert copied.read_text() == "<html/>"
    assert copied.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError, match=r"cannot find nope of example\.com/m"):
        upstream._copy_asset(tmp_path, env, "example.com/m", "nope", tmp_path / "out" / "x")


def test_cache_key_follows_the_wrapper_module(tmp_path: Path) -> None:
    """A changed go.sum (a changed pin) means a different cache directory: a rebuild."""
    k8s = upstream.components()[0]
    copy = tmp_path / "k8s"
    shutil.copytree(k8s.module_dir, copy)
    moved = replace(k8s, module_dir=copy)
    assert moved.key == k8s.key
    (copy / "go.sum").write_text((copy / "go.sum").read_text() + "example.com/x v1.0.0 h1:x=\n")
    assert moved.key != k8s.key


def test_unknown_version_is_refused_with_the_pins() -> None:
    with pytest.raises(ValueError, match=r"unknown Kubernetes version 'v1.2.3'; pinned: v1.35"):
        upstream.components("v1.2.3")
