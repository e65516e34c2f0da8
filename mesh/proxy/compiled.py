"""The proxy's hot path compiled to C with mypyc, used only when built from these exact sources.

The modules in ``HOT_PATH`` (HTTP/1 parsing and forwarding, the driver and its
connections, routing, pooling, policy and metrics) are plain typed Python;
mypyc (part of mypy) compiles them unchanged, which roughly halves the CPU the
proxy spends per request. Rules:
- A build is keyed by a digest of every source of ``mesh.proxy``, the Python
  version and mypy's: it lives in ``.build/proxy-compiled/<digest>`` of the
  source tree (copied from ``~/.cache/isthmus/proxy-compiled/<digest>`` when a
  clone built it before). An edited source has another digest, so it runs as
  Python until rebuilt: never a stale build.
- ``use()``, run by ``mesh.proxy`` before anything else, makes ``import`` load
  the compiled modules of the current digest if that build exists.
- ``ISTHMUS_PROXY_COMPILED``: unset or ``auto``, compiled when built; ``0``, the
  Python modules (to compare, or to debug); ``1``, compiled or an ImportError.
- ``python -m mesh.proxy.mypyc_build`` builds (``mypyc_build``; ``./run`` does
  it when the sources change).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = ["ENV", "HOT_PATH", "build_dir", "cache_dir", "files", "mode", "source_digest", "use"]

ENV = "ISTHMUS_PROXY_COMPILED"
HOT_PATH = (
    "h1wire",
    "http1",
    "forwarding",
    "connection",
    "exchange",
    "pool",
    "resolve",
    "outbound",
    "inbound",
    "telemetry",
    "policy",
)
"""The modules of ``mesh.proxy`` compiled (all sans-IO cores or the asyncio driver)."""
_PACKAGE = Path(__file__).resolve().parent
_TREE = _PACKAGE.parent.parent
MANIFEST = "manifest.json"
"""A build's index: module name -> extension file (relative)."""

_mode = "python"


def source_digest() -> str:
    """The digest of every ``mesh.proxy`` source, the Python version and mypy's version."""
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update(_mypy_version().encode())
    for path in sorted(_PACKAGE.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:24]


def _mypy_version() -> str:
    spec = importlib.util.find_spec("mypy")
    if spec is None or spec.origin is None:
        return "none"
    version = Path(spec.origin).with_name("version.py")
    return version.read_text() if version.is_file() else "unknown"


def build_dir(digest: str) -> Path:
    """Where the build of ``digest`` lives in this source tree."""
    return _TREE / ".build" / "proxy-compiled" / digest


def cache_dir(digest: str) -> Path:
    """Where a build of ``digest`` is kept across clones."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "isthmus" / "proxy-compiled" / digest


def files(directory: Path) -> dict[str, Path] | None:
    """Module name -> extension file of a complete build, or ``None``."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    found = {name: directory / rel for name, rel in manifest["modules"].items()}
    return found if all(f.is_file() for f in found.values()) else None


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules of one build (everything else goes to the usual finders)."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self._files = dict(files)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        file = self._files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def use(environ: Mapping[str, str] = os.environ) -> str:
    """Load the compiled hot path if it is built for these sources; the mode it gives."""
    global _mode
    setting = environ.get(ENV, "auto").strip().lower() or "auto"
    if setting not in ("auto", "0", "1"):
        raise ImportError(f"{ENV}={setting!r}: expected auto, 0 or 1")
    if setting == "0":
        return _mode
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return _mode
    found = files(build_dir(source_digest()))
    loaded = [m for m in HOT_PATH if f"mesh.proxy.{m}" in sys.modules]
    if found is None or loaded:
        if setting == "1":
            why = f"already imported: {loaded}" if loaded else "not built for these sources"
            raise ImportError(
                f"{ENV}=1 but the compiled proxy hot path cannot be used ({why}); "
                "build it with `python -m mesh.proxy.compiled build`"
            )
        return _mode
    sys.meta_path.insert(0, _Finder(found))
    _mode = "compiled"
    return _mode


def mode() -> str:
    """``compiled`` or ``python``: what this process runs."""
    return _mode
