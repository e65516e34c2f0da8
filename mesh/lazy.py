"""Package names loaded on first use (PEP 562), for packages whose imports are costly.

A package lists which of its modules defines each exported name (``sources``);
``exports`` gives it the module-level ``__getattr__`` and ``__dir__`` that import
that module when a name is first asked for and keep the value in the package's
namespace, so later lookups never come back here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["exports"]


def exports(
    package: str,
    sources: Mapping[str, Sequence[str]],
    namespace: MutableMapping[str, Any],
    names: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` (``namespace``: its ``globals()``)."""
    module_of = {name: module for module, listed in sources.items() for name in listed}

    def getattr_(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(names))

    return getattr_, dir_
