"""Mesh adapters: how the harness asks a particular mesh to do what suites need.

``get_adapter(name, workdir)`` makes the adapter registered under ``name``
(``isthmus``; ``linkerd`` later); ``ADAPTERS`` lists them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from harness.adapters.base import (
    CheckResult,
    Feature,
    IdentityApi,
    IssuerFiles,
    MeshAdapter,
    MeshError,
    ObjectRef,
    SharedTrust,
)

__all__ = [
    "ADAPTERS",
    "CheckResult",
    "Feature",
    "IdentityApi",
    "IssuerFiles",
    "MeshAdapter",
    "MeshError",
    "ObjectRef",
    "SharedTrust",
    "get_adapter",
]

ADAPTERS = {
    "isthmus": "harness.adapters.isthmus:IsthmusAdapter",
}
"""Adapter name -> ``module:class``; the class takes ``(workdir, **options)``."""


def get_adapter(name: str, workdir: Path, **options: Any) -> MeshAdapter:
    """The adapter ``name`` keeping its files under ``workdir``; ``MeshError`` if unknown."""
    try:
        target = ADAPTERS[name]
    except KeyError:
        raise MeshError(
            f"unknown mesh adapter {name!r}; choose one of: {', '.join(sorted(ADAPTERS))}"
        ) from None
    module, cls = target.split(":")
    adapter: MeshAdapter = getattr(importlib.import_module(module), cls)(workdir, **options)
    return adapter
