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
        assert [c.name for c in comps] == ["k8s", "etcd", "coredns"]
        k8s = comps[0]
        assert f"require k8s.io/kubernetes {pin.version}" in (k8s.module_dir / "go.mod").read_text()
        assert k8s.key.startswith(f"{pin.version}-")
        assert f"gitVersion={pin.version}" in k8s.ldflags


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
