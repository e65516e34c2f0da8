"""``python -m mesh.proxy.mypyc_build``: compile the proxy's hot path (``compiled.HOT_PATH``).

Compiles a copy of ``mesh.proxy`` with mypyc into the cache
(``compiled.cache_dir``) unless a build of the same digest is there, then
copies it into the source tree (``compiled.build_dir``), replacing builds of
earlier sources. Needs mypy (a dev dependency), a C compiler and Python's
headers; when it fails the proxy runs as Python and this exits 1 saying why.

    python -m mesh.proxy.mypyc_build [--force]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mesh.proxy.compiled import HOT_PATH, MANIFEST, build_dir, cache_dir, files, source_digest

__all__ = ["build", "main"]

BUILD_TIMEOUT = 900.0
"""Seconds mypyc and the C compiler may take."""
_PACKAGE = Path(__file__).resolve().parent


def build(*, force: bool = False, digest: str | None = None) -> Path:
    """Build the hot path for the current sources (or reuse a build); the build's directory.

    ``digest``: the sources' ``source_digest()``, when the caller has it. Raises
    ``RuntimeError`` with the compiler's output when the build fails.
    """
    digest = digest or source_digest()
    target = build_dir(digest)
    if not force and files(target) is not None:
        return target
    cached = cache_dir(digest)
    if force or files(cached) is None:
        _compile(cached)
        _prune(cached.parent)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cached, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    for old in target.parent.iterdir():  # builds of earlier sources
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


KEEP_CACHED = 8
"""Builds kept in the cache (the most recent; about 3 MiB each)."""


def _prune(cache: Path) -> None:
    builds = sorted(
        (d for d in cache.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True
    )
    for old in builds[KEEP_CACHED:]:
        shutil.rmtree(old, ignore_errors=True)


def _compile(into: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="isthmus-mypyc-") as tmp:
        src = Path(tmp)
        # the whole package: mypyc type-checks what the hot path imports (mesh.identity...)
        shutil.copytree(
            _PACKAGE.parent, src / "mesh", ignore=shutil.ignore_patterns("*.so", "__pycache__")
        )
        config = src / "mypy.ini"
        config.write_text("[mypy]\npython_version = 3.11\n")
        argv = [sys.executable, "-m", "mypyc", "--config-file", str(config)]
        argv += [f"mesh/proxy/{m}.py" for m in HOT_PATH]
        done = subprocess.run(
            argv, cwd=src, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"mypyc failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        staging = into.with_name(into.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "mesh" / "proxy").mkdir(parents=True)
        modules: dict[str, str] = {}
        for m in HOT_PATH:
            found = sorted((src / "mesh" / "proxy").glob(f"{m}.*.so"))
            if not found:
                raise RuntimeError(f"mypyc did not produce mesh/proxy/{m}: {done.stdout}")
            rel = f"mesh/proxy/{found[0].name}"
            shutil.copy2(found[0], staging / rel)
            modules[f"mesh.proxy.{m}"] = rel
        for shared in src.glob("*__mypyc.*.so"):  # the group's runtime, a top-level module
            shutil.copy2(shared, staging / shared.name)
            modules[shared.name.split(".", 1)[0]] = shared.name
        (staging / MANIFEST).write_text(json.dumps({"modules": modules}, indent=1))
        shutil.rmtree(into, ignore_errors=True)
        staging.rename(into)


def main(argv: Sequence[str] | None = None) -> int:
    """Build unless up to date (``--force``: rebuild); 0 when a build is in place."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a not in ("--force",) for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    force = "--force" in args
    digest = source_digest()
    target = build_dir(digest)
    if not force and files(target) is not None:
        print(f"proxy hot path: compiled build up to date ({target})")
        return 0
    if force or files(cache_dir(digest)) is None:
        print(f"proxy hot path: compiling {len(HOT_PATH)} modules with mypyc (about a minute)")
    try:
        where = build(force=force, digest=digest)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"proxy hot path: build failed, the proxy runs as Python: {e}", file=sys.stderr)
        return 1
    print(f"proxy hot path: compiled build in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
