"""Names of mirrors and of the remote Services they stand for; every function here is invertible.

Rules: a mirror of Service ``svc`` in namespace ``ns`` exported by cluster ``c`` is
``svc-c`` in ``ns`` (CONF-1); ``remote_service_name`` undoes ``mirror_name`` for that
cluster, and ``parse_fq_name`` undoes ``remote_fq_name``. Names that would not be valid
Service names are refused here, with the reason, so the caller can report them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mesh.k8s.objects import ObjectKey
from mesh.multicluster import labels

__all__ = [
    "InvalidName",
    "RemoteFqName",
    "mirror_key",
    "mirror_name",
    "parse_fq_name",
    "remote_fq_name",
    "remote_key",
    "remote_service_name",
]

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
"""A Service name (RFC 1035 label); its length is checked separately (at most 63)."""
MAX_NAME = 63


class InvalidName(ValueError):
    """A name that cannot be a Service name or cannot be parsed back."""


def _check_label(name: str, what: str) -> None:
    if not name or len(name) > MAX_NAME or not _DNS_LABEL.match(name):
        raise InvalidName(f"{what} {name!r} is not a valid DNS label (a-z, 0-9, '-', <= 63)")


def mirror_name(service: str, cluster: str) -> str:
    """``<svc>-<cluster>``; ``InvalidName`` when that is not a valid Service name."""
    name = labels.mirror_service_name(service, cluster)
    _check_label(name, "mirror name")
    return name


def remote_service_name(mirror: str, cluster: str) -> str | None:
    """The remote Service that ``mirror`` mirrors for ``cluster``; ``None`` if it is not one."""
    suffix = f"-{cluster}"
    if not cluster or not mirror.endswith(suffix) or len(mirror) <= len(suffix):
        return None
    return mirror[: -len(suffix)]


def mirror_key(remote: ObjectKey, cluster: str) -> ObjectKey:
    """Where the mirror of ``remote`` lives: the same namespace, ``mirror_name``."""
    return ObjectKey(remote.namespace, mirror_name(remote.name, cluster))


def remote_key(mirror: ObjectKey, cluster: str) -> ObjectKey | None:
    """The remote Service behind ``mirror``; ``None`` if the name is not a mirror's."""
    service = remote_service_name(mirror.name, cluster)
    return ObjectKey(mirror.namespace, service) if service is not None else None


@dataclass(frozen=True)
class RemoteFqName:
    service: str
    namespace: str
    domain: str

    def __str__(self) -> str:
        return remote_fq_name(self.service, self.namespace, self.domain)


def remote_fq_name(service: str, namespace: str, domain: str) -> str:
    """``<svc>.<ns>.svc.<domain>``: the remote Service's name in its own cluster (CONF-3)."""
    return f"{service}.{namespace}.svc.{domain}"


def parse_fq_name(fq: str) -> RemoteFqName:
    """Undo ``remote_fq_name``; ``InvalidName`` when ``fq`` is not of that form."""
    parts = fq.split(".", 3)
    if len(parts) != 4 or parts[2] != "svc" or not all(parts):
        raise InvalidName(f"{fq!r} is not <service>.<namespace>.svc.<cluster domain>")
    return RemoteFqName(parts[0], parts[1], parts[3])
