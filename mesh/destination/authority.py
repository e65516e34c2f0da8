"""What a proxy asks the destination service about: parsing authorities into targets.

An authority is ``<svc>.<ns>.svc.<cluster-domain>:<port>``, optionally with a
leading ``<hostname>.`` naming one endpoint of a headless service (a
StatefulSet pod), or ``<ip>:<port>``. A missing port means 80. Names outside
the cluster's own domain are not ours to answer: ``parse`` raises
``AuthorityError`` for them. Pure and invertible: ``parse(str(t), d) == t``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["DEFAULT_PORT", "AuthorityError", "IpTarget", "ServiceTarget", "Target", "parse"]

DEFAULT_PORT = 80
_MAX_PORT = 65535


class AuthorityError(ValueError):
    """An authority this destination service cannot answer for; the message says why."""


@dataclass(frozen=True)
class ServiceTarget:
    """A service port, or one named endpoint (``hostname``) of it."""

    namespace: str
    name: str
    port: int
    cluster_domain: str
    hostname: str = ""

    @property
    def fqdn(self) -> str:
        """``<svc>.<ns>.svc.<cluster-domain>``"""
        return f"{self.name}.{self.namespace}.svc.{self.cluster_domain}"

    def __str__(self) -> str:
        host = f"{self.hostname}.{self.fqdn}" if self.hostname else self.fqdn
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class IpTarget:
    """An address: a cluster IP, a pod IP, or one we know nothing about."""

    ip: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


Target = ServiceTarget | IpTarget


def _split(authority: str) -> tuple[str, int]:
    host, port_text = authority, ""
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise AuthorityError(f"{authority!r}: malformed IPv6 address")
        port_text = rest[1:]
        if rest and not port_text:
            raise AuthorityError(f"{authority!r}: empty port")
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
        if not port_text:
            raise AuthorityError(f"{authority!r}: empty port")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) <= _MAX_PORT:
        raise AuthorityError(f"{authority!r}: port {port_text!r} is not a number in 1-65535")
    return host, int(port_text)


def parse(authority: str, cluster_domain: str) -> Target:
    """The target ``authority`` names in a cluster whose domain is ``cluster_domain``."""
    if not authority:
        raise AuthorityError("empty authority")
    host, port = _split(authority)
    try:
        return IpTarget(str(ipaddress.ip_address(host)), port)
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    domain = cluster_domain.lower().rstrip(".")
    suffix = f".svc.{domain}"
    if not name.endswith(suffix):
        raise AuthorityError(
            f"{authority!r} is not a service in this cluster's domain: "
            f"expected <svc>.<ns>{suffix}:<port>"
        )
    labels = name.removesuffix(suffix).split(".")
    if any(not label for label in labels) or len(labels) not in (2, 3):
        raise AuthorityError(
            f"{authority!r}: expected <svc>.<ns>{suffix} or <hostname>.<svc>.<ns>{suffix}"
        )
    *hostname, svc, ns = labels
    return ServiceTarget(ns, svc, port, domain, hostname[0] if hostname else "")
