"""The compiled hot path: used only when built from the current sources, and as asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mesh.proxy import compiled

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_the_digest_changes_with_any_source_of_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "proxy"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    (package / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(compiled, "_PACKAGE", package)
    first = compiled.source_digest()
    assert compiled.source_digest() == first, "the digest must be stable"
    (package / "b.py").write_text("y = 3\n")
    assert compiled.source_digest() != first, "an edited source must give another digest"


def test_a_build_is_complete_only_with_its_manifest_and_every_file(tmp_path: Path) -> None:
    assert compiled.files(tmp_path) is None
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "h1wire.so").write_bytes(b"")
    manifest = {"modules": {"mesh.proxy.h1wire": "mesh/h1wire.so", "x__mypyc": "x__mypyc.so"}}
    (tmp_path / compiled.MANIFEST).write_text(json.dumps(manifest))
    assert compiled.files(tmp_path) is None, "a missing file makes the build unusable"
    (tmp_path / "x__mypyc.so").write_bytes(b"")
    found = compiled.files(tmp_path)
    assert found == {
        "mesh.proxy.h1wire": tmp_path / "mesh" / "h1wire.so",
        "x__mypyc": tmp_path / "x__mypyc.so",
    }


def test_the_finder_answers_for_the_compiled_modules_only(tmp_path: Path) -> None:
    so = tmp_path / "http1.cpython-311-x86_64-linux-gnu.so"
    so.write_bytes(b"")
    finder = compiled._Finder({"mesh.proxy.http1": so})
    spec = finder.find_spec("mesh.proxy.http1")
    assert spec is not None
    assert spec.origin == str(so)
    assert finder.find_spec("mesh.proxy.balancer") is None


def test_a_bad_setting_is_refused() -> None:
    with pytest.raises(ImportError, match="expected auto, 0 or 1"):
        compiled.use({compiled.ENV: "yes"})


def test_off_runs_the_python_modules() -> None:
    done = _run(
        "import mesh.proxy.http1 as m, mesh.proxy.compiled as c; print(c.mode(), m.__file__)",
        **{compiled.ENV: "0"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["python", str(ROOT / "mesh" / "proxy" / "http1.py")]


def test_required_without_a_build_fails_loudly(tmp_path: Path) -> None:
    """Sources with no build (a copy of the package in a fresh tree) and ``=1``: ImportError."""
    tree = tmp_path / "tree"
    (tree / "mesh").mkdir(parents=True)
    (tree / "mesh" / "__init__.py").write_text("")
    src = ROOT / "mesh" / "proxy"
    (tree / "mesh" / "proxy").mkdir()
    for path in src.glob("*.py"):
        (tree / "mesh" / "proxy" / path.name).write_bytes(path.read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", "import mesh.proxy"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree), compiled.ENV: "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "not built for these sources" in done.stderr, done.stderr


def test_a_build_of_the_current_sources_is_what_the_proxy_imports() -> None:
    built = compiled.files(compiled.build_dir(compiled.source_digest()))
    if built is None:
        pytest.skip("no compiled build of these sources (./run builds it: mesh.proxy.mypyc_build)")
    done = _run(
        "import mesh.proxy.http1 as m, mesh.proxy.forwarding as f, mesh.proxy.compiled as c;"
        "print(c.mode(), m.__file__, f.__file__)",
        **{compiled.ENV: "1"},
    )
    assert done.returncode == 0, done.stderr
    mode, *paths = done.stdout.split()
    assert mode == "compiled"
    assert all(p.endswith(".so") and "/.build/proxy-compiled/" in p for p in paths), paths
