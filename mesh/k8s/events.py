"""What a watch of one kind of object reports, as domain events.

A watch starts with ``Listed`` (every object of the kind, replacing whatever was
known), then reports each change as ``Upserted`` or ``Deleted``. After an error it
lists again, so a consumer never has to reconcile a gap itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Deleted", "Listed", "Upserted", "WatchEvent"]

T = TypeVar("T")


@dataclass(frozen=True)
class Listed(Generic[T]):
    """Every object of ``kind`` that exists now; forget all others of that kind."""

    kind: type[T]
    objects: tuple[T, ...]


@dataclass(frozen=True)
class Upserted(Generic[T]):
    """``obj`` was added or changed."""

    obj: T


@dataclass(frozen=True)
class Deleted(Generic[T]):
    """``obj`` (its last known state) was deleted."""

    obj: T


WatchEvent = Listed[T] | Upserted[T] | Deleted[T]
