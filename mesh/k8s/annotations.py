"""The mesh's annotation names on workloads and services, and how their values read.

Names are Linkerd's, so manifests written for Linkerd apply unchanged. Port
lists (``config.linkerd.io/opaque-ports``, ``.../skip-inbound-ports``) are
comma-separated numbers, ``lo-hi`` ranges, or port names that the caller
resolves; entries that make no sense are ignored, as Linkerd does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_OPAQUE_PORTS",
    "DISABLE_IDENTITY",
    "INJECT",
    "OPAQUE_PORTS",
    "PROXY_CONTAINER",
    "PROXY_VERSION",
    "SKIP_INBOUND_PORTS",
    "PortRanges",
    "parse_ports",
]

PROXY_CONTAINER = "linkerd-proxy"
"""The name of the injected proxy container."""
PROXY_VERSION = "linkerd.io/proxy-version"
"""Set on a pod by the injector; its presence marks the pod as meshed."""
INJECT = "linkerd.io/inject"
OPAQUE_PORTS = "config.linkerd.io/opaque-ports"
SKIP_INBOUND_PORTS = "config.linkerd.io/skip-inbound-ports"
DISABLE_IDENTITY = "config.linkerd.io/disable-identity"

_MAX_PORT = 65535


@dataclass(frozen=True)
class PortRanges:
    """A set of ports kept as inclusive ranges."""

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, *ports: int) -> PortRanges:
        return cls(tuple((p, p) for p in sorted(set(ports))))

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and any(lo <= port <= hi for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


DEFAULT_OPAQUE_PORTS = PortRanges.of(25, 587, 3306, 4444, 5432, 6379, 9300, 11211)
"""Ports treated as opaque when nothing says otherwise, as Linkerd's default install."""


def _number(text: str) -> int | None:
    if not text.isdigit():
        return None
    port = int(text)
    return port if 0 < port <= _MAX_PORT else None


def parse_ports(value: str, resolve: Callable[[str], Iterable[int]] | None = None) -> PortRanges:
    """The ports that ``value`` lists; ``resolve`` turns a port name into its numbers."""
    ranges: list[tuple[int, int]] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        lo_text, dash, hi_text = item.partition("-")
        lo = _number(lo_text.strip())
        if dash:
            hi = _number(hi_text.strip())
            if lo is not None and hi is not None and lo <= hi:
                ranges.append((lo, hi))
        elif lo is not None:
            ranges.append((lo, lo))
        elif resolve is not None:
            ranges.extend((p, p) for p in resolve(item))
    return PortRanges(tuple(sorted(set(ranges))))
