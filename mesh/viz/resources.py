"""Resource arguments of ``viz`` as Linkerd spells them, sans I/O.

Rules:
- A kind is given by any of Linkerd's spellings (``deploy``, ``deployment``,
  ``deployments``, ``po``, ``svc``, ``ns``, ``au``, ``ts``, ...) and normalised to
  one canonical name (``deployment``, ``pod``, ``service``, ``namespace``,
  ``authority``, ``trafficsplit``, ...).
- ``kind``, ``kind/name`` and ``kind name...`` are accepted, as by Linkerd; a
  ``--from``/``--to`` value is ``kind/name`` (``kind`` alone means all of them).
- An unknown kind is a ``ValueError`` listing the kinds there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "KINDS",
    "WORKLOAD_KINDS",
    "Resource",
    "Selection",
    "canonical_kind",
    "parse_resource",
    "parse_selection",
]

_ALIASES: dict[str, tuple[str, ...]] = {
    "deployment": ("deploy", "deploys", "deployment", "deployments"),
    "pod": ("po", "pod", "pods"),
    "service": ("svc", "svcs", "service", "services"),
    "namespace": ("ns", "namespace", "namespaces"),
    "authority": ("au", "authority", "authorities"),
    "trafficsplit": ("ts", "trafficsplit", "trafficsplits"),
    "statefulset": ("sts", "statefulset", "statefulsets"),
    "daemonset": ("ds", "daemonset", "daemonsets"),
    "replicaset": ("rs", "replicaset", "replicasets"),
    "job": ("job", "jobs"),
}
_BY_ALIAS = {alias: kind for kind, aliases in _ALIASES.items() for alias in aliases}

KINDS: tuple[str, ...] = tuple(_ALIASES)
WORKLOAD_KINDS = frozenset(
    {"deployment", "pod", "namespace", "statefulset", "daemonset", "replicaset", "job"}
)
"""Kinds whose rows are groups of pods (their figures are the pods' own)."""

SHORT = {"deployment": "deploy", "service": "svc", "namespace": "ns", "trafficsplit": "ts"}


def canonical_kind(text: str) -> str:
    """The canonical kind of any of its spellings; ``ValueError`` listing the kinds otherwise."""
    kind = _BY_ALIAS.get(text.strip().lower())
    if kind is None:
        known = ", ".join(a for aliases in _ALIASES.values() for a in aliases[:2])
        raise ValueError(f"unknown resource type {text!r}; known types: {known}")
    return kind


@dataclass(frozen=True, slots=True)
class Resource:
    """``kind`` objects named ``name`` (None: every one) in ``namespace`` (None: the default)."""

    kind: str
    name: str | None = None
    namespace: str | None = None

    def __str__(self) -> str:
        short = SHORT.get(self.kind, self.kind)
        return f"{short}/{self.name}" if self.name else short


def parse_resource(text: str, namespace: str | None = None) -> Resource:
    """``kind`` or ``kind/name`` as a ``Resource``."""
    kind, _, name = text.partition("/")
    if not kind or (_ and not name):
        raise ValueError(f"expected a resource as type or type/name, got {text!r}")
    return Resource(canonical_kind(kind), name or None, namespace)


@dataclass(frozen=True, slots=True)
class Selection:
    """The rows asked for: one kind, and optionally some names of it."""

    kind: str
    names: tuple[str, ...] = ()

    def wants(self, name: str) -> bool:
        return not self.names or name in self.names


def parse_selection(args: Sequence[str]) -> Selection:
    """``viz stat``'s positional arguments: ``kind``, ``kind/name...`` or ``kind name...``."""
    if not args:
        raise ValueError("expected a resource type, such as deploy, pod, svc, ns or authority")
    first, *rest = args
    head = parse_resource(first)
    names = [head.name] if head.name else []
    for arg in rest:
        if "/" in arg:
            other = parse_resource(arg)
            if other.kind != head.kind:
                raise ValueError(f"all resources must be of one type; got {first} and {arg}")
            names.append(other.name or "")
        else:
            names.append(arg)
    return Selection(head.kind, tuple(n for n in names if n))
