"""Deciding and issuing workload certificates, sans I/O.

The identity service hands ``review`` what a proxy sent (the identity it asks
for, its CSR) and what the TokenReview of the proxy's token said; ``review``
returns ``Accepted`` or ``Refused`` naming the failed check (CONF-31). Only an
``Accepted`` can be passed to ``issue``, which signs a short-lived leaf with the
cluster's issuer. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from mesh.identity.certs import DEFAULT_CLOCK_SKEW, Credentials
from mesh.identity.names import DEFAULT_CONTROL_PLANE_NS, WorkloadIdentity, parse
from mesh.identity.pem import certificates_pem, key_algorithm
from mesh.identity.trust import describe, validity_problem

__all__ = [
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
]

DEFAULT_AUDIENCE = "identity.l5d.io"
"""The audience of the projected token a proxy presents, as in Linkerd."""
DEFAULT_LEAF_LIFETIME = timedelta(hours=24)
"""How long a workload certificate lives; proxies renew well before it ends."""
_MIN_RSA_BITS = 2048
_SA_PREFIX = "system:serviceaccount:"


class Check(StrEnum):
    """The check a refused request failed."""

    IDENTITY = "identity"
    TOKEN_AUTHENTICATED = "token-authenticated"
    TOKEN_AUDIENCE = "token-audience"
    TOKEN_SERVICE_ACCOUNT = "token-service-account"
    CSR_READABLE = "csr-readable"
    CSR_SIGNATURE = "csr-signature"
    CSR_KEY = "csr-key"
    CSR_SAN = "csr-san"


@dataclass(frozen=True)
class TokenReview:
    """What the Kubernetes TokenReview of the proxy's token returned."""

    authenticated: bool
    username: str = ""
    audiences: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssuingPolicy:
    """Which identities this cluster's issuer certifies, and the token audience it expects."""

    trust_domain: str
    control_plane_ns: str = DEFAULT_CONTROL_PLANE_NS
    audience: str = DEFAULT_AUDIENCE


@dataclass(frozen=True)
class Accepted:
    """A request that passed every check; ``issue`` turns it into a certificate."""

    identity: WorkloadIdentity
    csr: x509.CertificateSigningRequest


@dataclass(frozen=True)
class Refused:
    """A request that failed ``check``; ``reason`` says how."""

    check: Check
    reason: str

    def __str__(self) -> str:
        return f"{self.check}: {self.reason}"


Decision = Accepted | Refused


@dataclass(frozen=True)
class IssuedCertificate:
    """A workload certificate and the chain (issuer first) to send with it."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default=())

    @property
    def valid_until(self) -> datetime:
        """When the leaf expires."""
        return self.leaf.not_valid_after_utc

    def leaf_pem(self) -> bytes:
        """The leaf certificate as PEM."""
        return certificates_pem(self.leaf)

    def chain_pem(self) -> bytes:
        """The chain as PEM, issuer first."""
        return certificates_pem(*self.chain)


def _identity(policy: IssuingPolicy, requested: str) -> WorkloadIdentity | Refused:
    try:
        identity = parse(requested)
    except ValueError as e:
        return Refused(Check.IDENTITY, str(e))
    if (identity.control_plane_ns, identity.trust_domain) != (
        policy.control_plane_ns,
        policy.trust_domain,
    ):
        return Refused(
            Check.IDENTITY,
            f"{requested!r} is not under this issuer's "
            f"'identity.{policy.control_plane_ns}.{policy.trust_domain}'",
        )
    return identity


def _token(policy: IssuingPolicy, identity: WorkloadIdentity, token: TokenReview) -> Refused | None:
    if not token.authenticated:
        return Refused(Check.TOKEN_AUTHENTICATED, "the token was not authenticated")
    if policy.audience not in token.audiences:
        return Refused(
            Check.TOKEN_AUDIENCE,
            f"the token's audiences {list(token.audiences)} lack {policy.audience!r}",
        )
    expected = f"{_SA_PREFIX}{identity.namespace}:{identity.service_account}"
    if token.username != expected:
        return Refused(
            Check.TOKEN_SERVICE_ACCOUNT,
            f"the token belongs to {token.username!r}, not {expected!r}",
        )
    return None


def _load_csr(data: bytes) -> x509.CertificateSigningRequest:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_csr(data)
    return x509.load_der_x509_csr(data)


def _csr_key_problem(csr: x509.CertificateSigningRequest) -> str | None:
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
        return None
    name = (
        key_algorithm(key)
        if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        else type(key).__name__
    )
    return f"the key is {name}; expected ECDSA P-256 or RSA >= {_MIN_RSA_BITS}"


def _san_problem(csr: x509.CertificateSigningRequest, identity: str) -> str | None:
    try:
        names = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return "no subjectAltName; expected one DNS name, the identity"
    others = [n for n in names if not isinstance(n, x509.DNSName)]
    if others:
        kinds = ", ".join(f"{type(n).__name__} {n.value!r}" for n in others)
        return f"only one DNS name is allowed; found {kinds}"
    dns = [n.value for n in names if isinstance(n, x509.DNSName)]
    if len(dns) != 1:
        return f"expected exactly one DNS name, found {len(dns)}: {dns}"
    if dns[0] != identity:
        return f"the DNS name {dns[0]!r} is not the requested identity {identity!r}"
    return None


def review(policy: IssuingPolicy, requested: str, token: TokenReview, csr: bytes) -> Decision:
    """Decide whether to certify ``requested`` for the holder of ``token`` with ``csr``.

    ``csr`` is DER (as sent on the wire) or PEM. The result is ``Accepted`` only
    if the identity is one this issuer names, the token is authenticated for
    ``policy.audience`` and belongs to the identity's service account, and the
    CSR is validly self-signed with an accepted key and names exactly the
    identity as its only SAN.
    """
    identity = _identity(policy, requested)
    if isinstance(identity, Refused):
        return identity
    refused = _token(policy, identity, token)
    if refused:
        return refused
    try:
        request = _load_csr(csr)
        request.public_key()
        signed = request.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        return Refused(Check.CSR_READABLE, f"the CSR cannot be read: {e}")
    if not signed:
        return Refused(Check.CSR_SIGNATURE, "the CSR's signature does not verify")
    problem = _csr_key_problem(request)
    if problem:
        return Refused(Check.CSR_KEY, problem)
    try:
        problem = _san_problem(request, str(identity))
    except ValueError as e:
        return Refused(Check.CSR_READABLE, f"the CSR's extensions cannot be read: {e}")
    if problem:
        return Refused(Check.CSR_SAN, problem)
    return Accepted(identity, request)


def _leaf_usage(rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue(
    issuer: Credentials,
    accepted: Accepted,
    *,
    now: datetime,
    lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> IssuedCertificate:
    """Sign a workload certificate for an accepted request.

    The leaf names the identity as its only (DNS) SAN, is valid from
    ``now - clock_skew`` to ``now + lifetime`` (never past the issuer's own
    expiry), may be used for TLS server and client authentication, and is not a
    CA. Raises ``ValueError`` if the issuer is not valid at ``now``.
    """
    problem = validity_problem(issuer.certificate, now)
    if problem:
        raise ValueError(f"issuer {describe(issuer.certificate)}: {problem}")
    public_key = accepted.csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError(f"unsupported key {type(public_key).__name__}")
    not_after = min(now + lifetime, issuer.certificate.not_valid_after_utc)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - clock_skew)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(str(accepted.identity))]), critical=True
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(isinstance(public_key, rsa.RSAPublicKey)), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )
    return IssuedCertificate(leaf, (issuer.certificate, *issuer.chain))
