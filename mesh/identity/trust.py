"""Chains of trust: does a certificate lead to one of our trust anchors?

Pure functions over parsed certificates and an explicit clock ``now``. A chain
is accepted only if every certificate on it is valid at ``now``, every issuer is
a CA allowed to sign certificates (RFC 5280: ``basicConstraints ca=true``, and
``keyCertSign`` when ``keyUsage`` is present, path lengths respected) and every
signature verifies. ``verify_peer`` is what the proxy asks of a TLS peer
(CONF-32: a certificate from another trust anchor is refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

__all__ = [
    "ChainError",
    "ca_problem",
    "chain_to_anchor",
    "describe",
    "validity_problem",
    "verify_peer",
]

_MAX_DEPTH = 8


class ChainError(ValueError):
    """A certificate that does not chain to a trust anchor; the message says why."""


def describe(cert: x509.Certificate) -> str:
    """A short name for ``cert`` in messages: its subject, else its first DNS SAN."""
    subject = cert.subject.rfc4514_string()
    if subject:
        return subject
    names = _dns_names(cert)
    return f"DNS:{names[0]}" if names else f"serial {cert.serial_number:x}"


def validity_problem(cert: x509.Certificate, now: datetime) -> str | None:
    """Why ``cert`` is not valid at ``now`` (expired or not yet valid), or ``None``."""
    if now < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc.isoformat()} (now {now.isoformat()})"
    if now > cert.not_valid_after_utc:
        return f"expired at {cert.not_valid_after_utc.isoformat()} (now {now.isoformat()})"
    return None


def ca_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` may not sign certificates (not a CA), or ``None`` if it may."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "not a CA: no basicConstraints extension"
    if not constraints.ca:
        return "not a CA: basicConstraints ca=false"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not usage.key_cert_sign:
        return "not a CA: keyUsage lacks keyCertSign"
    return None


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_issuer(cert: x509.Certificate, issuer: x509.Certificate, below: int) -> None:
    """Raise if ``issuer`` may not sign ``cert`` with ``below`` CA certificates under it."""
    problem = ca_problem(issuer)
    if problem:
        raise ChainError(f"{describe(issuer)} is {problem}")
    constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    if constraints.path_length is not None and below > constraints.path_length:
        raise ChainError(
            f"{describe(issuer)} allows {constraints.path_length} CA(s) below it, found {below}"
        )


def chain_to_anchor(
    cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    now: datetime,
) -> list[x509.Certificate]:
    """Return the path ``[cert, ..., anchor]`` from ``cert`` to one of ``anchors``.

    Raises ``ChainError`` saying why when there is no valid path at ``now``.
    """
    if not anchors:
        raise ChainError("no trust anchors to verify against")
    path = [cert]
    while len(path) <= _MAX_DEPTH:
        current = path[-1]
        problem = validity_problem(current, now)
        if problem:
            raise ChainError(f"{describe(current)} is {problem}")
        cas_below = sum(1 for c in path[1:] if ca_problem(c) is None)
        if current in anchors:
            return path
        named = [a for a in anchors if a.subject == current.issuer]
        for anchor in named:
            if _signed_by(current, anchor):
                _check_issuer(current, anchor, cas_below)
                problem = validity_problem(anchor, now)
                if problem:
                    raise ChainError(f"trust anchor {describe(anchor)} is {problem}")
                path.append(anchor)
                return path
        parent = next((c for c in intermediates if c not in path and _signed_by(current, c)), None)
        if parent is None:
            issuer = current.issuer.rfc4514_string()
            if named:
                raise ChainError(
                    f"{describe(current)} is signed by a different key than the trust "
                    f"anchor named {issuer} (a different trust anchor with the same name?)"
                )
            raise ChainError(
                f"{describe(current)} is issued by {issuer}, which is not a trust anchor "
                "and not in the chain"
            )
        _check_issuer(current, parent, cas_below)
        path.append(parent)
    raise ChainError(f"chain longer than {_MAX_DEPTH} certificates")


def verify_peer(
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    now: datetime,
) -> str:
    """Return the identity (the single DNS SAN) of a peer presenting ``chain``, leaf first.

    Raises ``ChainError`` with the reason when the leaf is a CA, names no single
    DNS identity, or does not chain to one of ``anchors`` at ``now``.
    """
    if not chain:
        raise ChainError("the peer presented no certificate")
    leaf, *intermediates = chain
    if ca_problem(leaf) is None:
        raise ChainError(f"{describe(leaf)} is a CA certificate, not a workload certificate")
    names = _dns_names(leaf)
    if len(names) != 1:
        raise ChainError(f"{describe(leaf)} has {len(names)} DNS SANs; expected exactly one")
    chain_to_anchor(leaf, intermediates, anchors, now=now)
    return names[0]
