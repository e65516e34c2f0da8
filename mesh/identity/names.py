"""Workload identity names, as Linkerd spells them.

A workload identity is
``<service-account>.<namespace>.serviceaccount.identity.<control-plane-ns>.<trust-domain>``.
It ends with the trust domain, never the cluster domain. The functions here are
pure and invertible: ``parse(str(identity)) == identity`` for every valid identity.

Service accounts, namespaces and the control-plane namespace must be DNS-1123
labels (no dots), so the name parses without ambiguity; the trust domain is a
DNS-1123 subdomain and may contain dots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_CONTROL_PLANE_NS",
    "WorkloadIdentity",
    "anchor_common_name",
    "check_label",
    "check_subdomain",
    "issuer_common_name",
    "parse",
]

DEFAULT_CONTROL_PLANE_NS = "linkerd"
"""Linkerd's control-plane namespace, kept so manifests written for Linkerd apply unchanged."""

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_MAX = 63
_NAME_MAX = 253
_MARKER = ("serviceaccount", "identity")
_FORMAT = "<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>"


def check_label(what: str, value: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``value`` is a DNS-1123 label."""
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > _LABEL_MAX:
        raise ValueError(f"{what} {value!r} is longer than {_LABEL_MAX} characters")
    if not _LABEL.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', starting and ending with a letter or digit)"
        )


def check_subdomain(what: str, value: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``value`` is a DNS-1123 subdomain."""
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > _NAME_MAX:
        raise ValueError(f"{what} {value!r} is longer than {_NAME_MAX} characters")
    for label in value.split("."):
        try:
            check_label(f"{what} label", label)
        except ValueError as e:
            raise ValueError(f"{what} {value!r} is not a DNS-1123 subdomain: {e}") from None


@dataclass(frozen=True)
class WorkloadIdentity:
    """The identity of a workload's service account; ``str()`` gives the identity name.

    Construction validates every part and raises ``ValueError`` naming the bad one.
    """

    service_account: str
    namespace: str
    control_plane_ns: str
    trust_domain: str

    def __post_init__(self) -> None:
        check_label("service account", self.service_account)
        check_label("namespace", self.namespace)
        check_label("control-plane namespace", self.control_plane_ns)
        check_subdomain("trust domain", self.trust_domain)
        name = str(self)
        if len(name) > _NAME_MAX:
            raise ValueError(f"identity {name!r} is longer than {_NAME_MAX} characters")

    def __str__(self) -> str:
        return (
            f"{self.service_account}.{self.namespace}.serviceaccount.identity."
            f"{self.control_plane_ns}.{self.trust_domain}"
        )


def parse(name: str) -> WorkloadIdentity:
    """Return the identity that ``name`` spells; raise ``ValueError`` saying what is wrong."""
    parts = name.split(".")
    if len(parts) < 6 or tuple(parts[2:4]) != _MARKER:
        raise ValueError(f"not a workload identity: {name!r}; expected {_FORMAT}")
    sa, ns, _, _, cp_ns, *domain = parts
    try:
        return WorkloadIdentity(sa, ns, cp_ns, ".".join(domain))
    except ValueError as e:
        raise ValueError(f"not a workload identity: {name!r}: {e}") from None


def anchor_common_name(trust_domain: str) -> str:
    """The default common name of a trust anchor: ``root.<trust-domain>``."""
    check_subdomain("trust domain", trust_domain)
    return f"root.{trust_domain}"


def issuer_common_name(trust_domain: str, control_plane_ns: str = DEFAULT_CONTROL_PLANE_NS) -> str:
    """The common name of a cluster's issuer: ``identity.<control-plane-ns>.<trust-domain>``."""
    check_label("control-plane namespace", control_plane_ns)
    check_subdomain("trust domain", trust_domain)
    return f"identity.{control_plane_ns}.{trust_domain}"
