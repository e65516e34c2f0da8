"""``python -m bench.importmem MODULE...``: resident memory each module adds while it is imported.

Prints one JSON object: ``{"baseline_kib", "total_kib", "modules": {name: self_kib}}``
where ``baseline_kib`` is the process's RSS before the first import asked for,
``total_kib`` what those imports added, and each module's ``self_kib`` the RSS
it added minus what the modules it imported added (so the figures add up to
about ``total_kib``). An extension module's figure includes loading its shared
library.

Rules:
- This module imports almost nothing itself (``sys``, ``os``, ``json``,
  ``importlib``): what is already loaded is baseline and is not attributed.
- A meta-path finder wraps each found loader and reads ``/proc/self/statm``
  around ``create_module`` and ``exec_module``; everything else about the
  loader is delegated unchanged, so modules load as they would without it.
- RSS grows in pages and allocator arenas, so a module's figure is the pages
  first touched while it loaded (a module allocating into an arena its
  predecessor opened shows less). Read the biggest figures, not the smallest.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["ImportMemory", "main", "measure"]

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _statm_rss_kib() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_KIB


class ImportMemory(importlib.abc.MetaPathFinder):
    """Attributes RSS growth to the module being loaded (children subtracted)."""

    def __init__(self, rss_kib: Callable[[], int] = _statm_rss_kib) -> None:
        self._rss_kib = rss_kib
        self._children: list[int] = []
        self.self_kib: dict[str, int] = {}

    def _measured(self, name: str, step: Callable[[], Any]) -> Any:
        self._children.append(0)
        start = self._rss_kib()
        try:
            return step()
        finally:
            grown = self._rss_kib() - start
            children = self._children.pop()
            self.self_kib[name] = self.self_kib.get(name, 0) + grown - children
            if self._children:
                self._children[-1] += grown

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec: importlib.machinery.ModuleSpec | None = (
                find(fullname, path, target) if find is not None else None
            )
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _Loader(spec.loader, fullname, self)
            return spec
        return None


class _Loader(importlib.abc.Loader):
    """A loader measuring ``create_module`` and ``exec_module``; the rest is the inner one's."""

    def __init__(self, inner: Any, name: str, memory: ImportMemory) -> None:
        self._inner = inner
        self._name = name
        self._memory = memory

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self._inner, "create_module", None)
        if create is None:
            return None
        module: ModuleType | None = self._memory._measured(self._name, lambda: create(spec))
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._memory._measured(self._name, lambda: self._inner.exec_module(module))

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._inner, attribute)


def measure(modules: Sequence[str]) -> dict[str, Any]:
    """Import ``modules`` in order under an ``ImportMemory``; the figures as a dict."""
    memory = ImportMemory()
    sys.meta_path.insert(0, memory)
    baseline = _statm_rss_kib()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        sys.meta_path.remove(memory)
    return {
        "baseline_kib": baseline,
        "total_kib": _statm_rss_kib() - baseline,
        "modules": memory.self_kib,
    }


def main(argv: Sequence[str] | None = None) -> None:
    modules = list(sys.argv[1:] if argv is None else argv)
    if not modules or any(m.startswith("-") for m in modules):
        print("usage: python -m bench.importmem MODULE [MODULE...]", file=sys.stderr)
        raise SystemExit(2)
    print(json.dumps(measure(modules), separators=(",", ":")))


if __name__ == "__main__":
    main()
