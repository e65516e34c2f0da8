"""What the failover controller reads: TrafficSplits managed for failover, and readiness.

Rules: plain frozen values built at the I/O edge (``mesh.failover.kube``) from raw
objects; nothing here imports a Kubernetes client. ``split_from_dict`` raises
``ValueError`` naming the field for a TrafficSplit it cannot use, so the watch leaves
it out and reports it. Weights are read as SMI writes them: integers (v1alpha2) or
Kubernetes quantities such as ``"500m"`` (v1alpha1).

The API is linkerd-failover's: a split is managed when it carries the selector label
(``app.kubernetes.io/managed-by: linkerd-failover`` by default); its primary is the
``failover.linkerd.io/primary-service`` annotation, or its first backend without one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from mesh.k8s.objects import ObjectKey

__all__ = [
    "DEFAULT_SELECTOR",
    "MANAGED_BY",
    "MANAGED_BY_VALUE",
    "PRIMARY_SERVICE",
    "Backend",
    "Split",
    "parse_selector",
    "parse_weight",
    "split_from_dict",
]

MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "linkerd-failover"
DEFAULT_SELECTOR: Final = f"{MANAGED_BY}={MANAGED_BY_VALUE}"
"""The label a TrafficSplit carries to be managed (linkerd-failover's Helm ``selector``
defaults to ``failover.linkerd.io/controlled-by=<release>``; ``--selector`` picks either)."""
PRIMARY_SERVICE: Final = "failover.linkerd.io/primary-service"

_SUFFIXES: Final = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
}
_QUANTITY = re.compile(r"^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|Ki|Mi|Gi)?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?)?$")


def parse_weight(value: object) -> Decimal:
    """A backend weight as a number: an integer, or a quantity string (``"500m"``, ``"1"``).

    ``ValueError`` for anything else, negative numbers included.
    """
    if isinstance(value, bool):
        raise ValueError(f"weight {value!r} is not a number")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"weight {value} is negative")
        return Decimal(value)
    if isinstance(value, str):
        match = _QUANTITY.match(value.strip())
        if match is None:
            raise ValueError(f"weight {value!r} is not an integer or a quantity")
        try:
            return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
        except InvalidOperation:
            raise ValueError(f"weight {value!r} is not an integer or a quantity") from None
    raise ValueError(f"weight {value!r} is not an integer or a quantity")


def parse_selector(text: str) -> dict[str, str]:
    """``key=value[,key=value]`` as a label mapping; ``ValueError`` saying what is wrong."""
    selector: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"selector {text!r}: {part.strip()!r} is not key=value")
        selector[key] = value
    return selector


@dataclass(frozen=True)
class Backend:
    """One ``spec.backends[]`` entry: the Service and its weight as written."""

    service: str
    weight: Decimal


@dataclass(frozen=True)
class Split:
    """A TrafficSplit the controller manages."""

    namespace: str
    name: str
    apex: str
    backends: tuple[Backend, ...]
    resource_version: str = ""
    uid: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    @property
    def primary(self) -> str:
        """The primary Service: the annotation, else the first backend."""
        named = self.annotations.get(PRIMARY_SERVICE, "").strip()
        return named or (self.backends[0].service if self.backends else "")

    def weights(self) -> tuple[Decimal, ...]:
        return tuple(b.weight for b in self.backends)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not an object")
    return value


def split_from_dict(obj: Mapping[str, Any]) -> Split:
    """A raw TrafficSplit (as the API serves it) as a ``Split``; ``ValueError`` if unusable."""
    meta = _mapping(obj.get("metadata"), "metadata")
    spec = _mapping(obj.get("spec"), "spec")
    raw_backends = spec.get("backends")
    if not isinstance(raw_backends, list) or not raw_backends:
        raise ValueError("spec.backends is missing or empty")
    backends = []
    for i, raw in enumerate(raw_backends):
        entry = _mapping(raw, f"spec.backends[{i}]")
        service = entry.get("service")
        if not isinstance(service, str) or not service:
            raise ValueError(f"spec.backends[{i}].service is missing")
        try:
            weight = parse_weight(entry.get("weight", 0))
        except ValueError as e:
            raise ValueError(f"spec.backends[{i}]: {e}") from None
        backends.append(Backend(service, weight))
    annotations = _mapping(meta.get("annotations"), "metadata.annotations")
    return Split(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        apex=str(spec.get("service") or ""),
        backends=tuple(backends),
        resource_version=str(meta.get("resourceVersion") or ""),
        uid=str(meta.get("uid") or ""),
        annotations={str(k): str(v) for k, v in annotations.items()},
    )
