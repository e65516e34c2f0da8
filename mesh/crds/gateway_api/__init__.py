"""The Gateway API CRDs the mesh installs: upstream's own files, vendored and pinned (SEC-5).

The YAML next to this module is copied byte for byte from the
``sigs.k8s.io/gateway-api`` Go module at ``VERSION`` (``config/crd/standard/``,
the standard channel), with the module's Apache-2.0 ``LICENSE``. ``FILES`` pins
each file's SHA-256; ``load`` refuses a file that does not match, so an edit
cannot slip in. The mesh routes by HTTPRoute only, so only its CRD is shipped.

To move the pin: ``go mod download -json sigs.k8s.io/gateway-api@<version>``
(the Go module proxy and checksum database verify it; ``MODULE_SUM`` is the
``h1:`` hash go.sum records), copy the files from its ``Dir``, and update
``VERSION``, ``MODULE_SUM`` and ``FILES``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["FILES", "GROUP", "MODULE", "MODULE_SUM", "VERSION", "load"]

GROUP = "gateway.networking.k8s.io"
MODULE = "sigs.k8s.io/gateway-api"
VERSION = "v1.2.1"
MODULE_SUM = "h1:fZZ/+RyRb+Y5tGkwxFKuYuSRQHu9dZtbjenblleOLHM="
"""The module's hash as go.sum and sum.golang.org record it."""
FILES = {
    "gateway.networking.k8s.io_httproutes.yaml": (
        "db36230a2f54ca3f1733bebc9d303d4db16c958856bf2be941a2c6269b872014"
    ),
}
"""Vendored file (``config/crd/standard/<name>`` in the module) -> its SHA-256."""


@cache
def _read(name: str) -> bytes:
    data = resources.files(__name__).joinpath(name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != FILES[name]:
        raise RuntimeError(
            f"{name} is not the pinned upstream file of {MODULE}@{VERSION} "
            f"(sha256 {digest}, expected {FILES[name]})"
        )
    return data


def load() -> list[dict[str, Any]]:
    """The upstream CRD documents, checked against their pins (fresh copies)."""
    docs: list[dict[str, Any]] = []
    for name in FILES:
        docs += [doc for doc in yaml.safe_load_all(_read(name)) if doc]
    return docs
