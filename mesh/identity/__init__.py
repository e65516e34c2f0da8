"""Workload identity for the mesh: names, trust anchors and issuers, certificate issuing.

Sans-IO throughout: functions take bytes or parsed objects and an explicit
clock ``now``; the identity service and the CLI do the I/O.
"""

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
