"""Workload identity for the mesh: names, trust anchors and issuers, certificate issuing.

Sans-IO throughout: functions take bytes or parsed objects and an explicit
clock ``now``; the identity service and the CLI do the I/O.

The package's names are loaded on first use (PEP 562): ``import mesh.identity.trust``
(what the sidecar proxy needs) must not load ``certs`` and ``issuing``, the
identity service's half, with the cryptography modules they pull in. Every name
below is importable from here as before; type checkers see the real imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh.lazy import exports

if TYPE_CHECKING:
    from mesh.identity.certs import (
        DEFAULT_ANCHOR_VALIDITY,
        DEFAULT_CLOCK_SKEW,
        DEFAULT_ISSUER_VALIDITY,
        Credentials,
        check_issuer,
        create_anchor,
        create_issuer,
        load_credentials,
    )
    from mesh.identity.issuing import (
        DEFAULT_AUDIENCE,
        DEFAULT_LEAF_LIFETIME,
        Accepted,
        Check,
        Decision,
        IssuedCertificate,
        IssuingPolicy,
        Refused,
        TokenReview,
        issue,
        review,
    )
    from mesh.identity.names import (
        DEFAULT_CONTROL_PLANE_NS,
        WorkloadIdentity,
        anchor_common_name,
        issuer_common_name,
        parse,
    )
    from mesh.identity.pem import CertError, PemFile, load_certificates, load_private_key
    from mesh.identity.trust import ChainError, chain_to_anchor, verify_peer

_SOURCES: dict[str, tuple[str, ...]] = {
    "certs": (
        "DEFAULT_ANCHOR_VALIDITY",
        "DEFAULT_CLOCK_SKEW",
        "DEFAULT_ISSUER_VALIDITY",
        "Credentials",
        "check_issuer",
        "create_anchor",
        "create_issuer",
        "load_credentials",
    ),
    "issuing": (
        "DEFAULT_AUDIENCE",
        "DEFAULT_LEAF_LIFETIME",
        "Accepted",
        "Check",
        "Decision",
        "IssuedCertificate",
        "IssuingPolicy",
        "Refused",
        "TokenReview",
        "issue",
        "review",
    ),
    "names": (
        "DEFAULT_CONTROL_PLANE_NS",
        "WorkloadIdentity",
        "anchor_common_name",
        "issuer_common_name",
        "parse",
    ),
    "pem": ("CertError", "PemFile", "load_certificates", "load_private_key"),
    "trust": ("ChainError", "chain_to_anchor", "verify_peer"),
}

__all__ = [
    "DEFAULT_ANCHOR_VALIDITY",
    "DEFAULT_AUDIENCE",
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_CONTROL_PLANE_NS",
    "DEFAULT_ISSUER_VALIDITY",
    "DEFAULT_LEAF_LIFETIME",
    "Accepted",
    "CertError",
    "ChainError",
    "Check",
    "Credentials",
    "Decision",
    "IssuedCertificate",
    "IssuingPolicy",
    "PemFile",
    "Refused",
    "TokenReview",
    "WorkloadIdentity",
    "anchor_common_name",
    "chain_to_anchor",
    "check_issuer",
    "create_anchor",
    "create_issuer",
    "issue",
    "issuer_common_name",
    "load_certificates",
    "load_credentials",
    "load_private_key",
    "parse",
    "review",
    "verify_peer",
]


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name
    __getattr__, __dir__ = exports(__name__, _SOURCES, globals(), __all__)
