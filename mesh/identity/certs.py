"""Trust anchors and issuers: create them, load them, check them.

The trust anchor is a self-signed root CA shared by every cluster; each cluster
has its own issuer, an intermediate CA signed by the anchor that signs workload
certificates. New keys are ECDSA P-256. Anchors made elsewhere may be ECDSA
P-256 or RSA; issuers must be ECDSA P-256 (as Linkerd requires).

Everything here is pure: inputs are bytes (``PemFile``) or parsed objects and an
explicit aware ``now``; nothing reads the clock or the file system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from mesh.identity.names import DEFAULT_CONTROL_PLANE_NS, anchor_common_name, issuer_common_name
from mesh.identity.pem import (
    CertError,
    PemFile,
    SigningKey,
    certificates_pem,
    key_algorithm,
    load_certificates,
    load_private_key,
    private_key_pem,
)
from mesh.identity.trust import ChainError, ca_problem, chain_to_anchor, describe, validity_problem

__all__ = [
    "DEFAULT_ANCHOR_VALIDITY",
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_ISSUER_VALIDITY",
    "Credentials",
    "check_issuer",
    "create_anchor",
    "create_issuer",
    "load_credentials",
]

DEFAULT_ANCHOR_VALIDITY = timedelta(hours=87600)
"""Ten years, as the seeds' ``step`` examples give their roots."""
DEFAULT_ISSUER_VALIDITY = timedelta(hours=8760)
"""One year, the seeds' ``--not-after 8760h``."""
DEFAULT_CLOCK_SKEW = timedelta(seconds=20)
"""How far before ``now`` a new certificate becomes valid, for peers whose clocks lag."""

_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Credentials:
    """A CA certificate with its private key, and any certificates between it and the anchor."""

    certificate: x509.Certificate
    key: SigningKey
    chain: tuple[x509.Certificate, ...] = field(default=())

    def certificate_pem(self) -> bytes:
        """The certificate followed by its chain, as PEM."""
        return certificates_pem(self.certificate, *self.chain)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PEM."""
        return private_key_pem(self.key)


def _common_name(value: str) -> x509.Name:
    try:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])
    except ValueError as e:
        raise ValueError(f"common name {value!r}: {e}") from None


def _ca_certificate(
    subject: x509.Name,
    key: SigningKey,
    signer: Credentials | None,
    *,
    now: datetime,
    validity: timedelta,
    path_length: int,
) -> x509.Certificate:
    signing_key = signer.key if signer else key
    issuer = signer.certificate.subject if signer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DEFAULT_CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if signer:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key())
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _check_validity(validity: timedelta) -> None:
    if validity <= timedelta(0):
        raise ValueError(f"validity must be positive, got {validity}")


def create_anchor(
    trust_domain: str,
    *,
    now: datetime,
    validity: timedelta = DEFAULT_ANCHOR_VALIDITY,
    common_name: str | None = None,
    key: SigningKey | None = None,
) -> Credentials:
    """Return a new self-signed trust anchor, valid from ``now`` for ``validity``.

    Its common name defaults to ``root.<trust_domain>``; a new ECDSA P-256 key is
    made unless ``key`` is given.
    """
    _check_validity(validity)
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = _common_name(common_name or anchor_common_name(trust_domain))
    cert = _ca_certificate(subject, key, None, now=now, validity=validity, path_length=1)
    return Credentials(cert, key)


def _signing_problem(creds: Credentials, now: datetime) -> str | None:
    """Why ``creds`` cannot sign certificates at ``now``, or ``None``."""
    if creds.certificate.public_key() != creds.key.public_key():
        return "the key does not match the certificate"
    return validity_problem(creds.certificate, now) or ca_problem(creds.certificate)


def create_issuer(
    anchor: Credentials,
    trust_domain: str,
    *,
    now: datetime,
    control_plane_ns: str = DEFAULT_CONTROL_PLANE_NS,
    validity: timedelta = DEFAULT_ISSUER_VALIDITY,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Credentials:
    """Return a new issuer (``identity.<control_plane_ns>.<trust_domain>``) signed by ``anchor``.

    The issuer may sign only end-entity certificates (pathlen 0). Raises
    ``ValueError`` if the anchor cannot sign at ``now`` or expires before the
    issuer would.
    """
    _check_validity(validity)
    problem = _signing_problem(anchor, now)
    if problem:
        raise ValueError(f"trust anchor {describe(anchor.certificate)}: {problem}")
    if now + validity > anchor.certificate.not_valid_after_utc:
        raise ValueError(
            f"the issuer would outlive the trust anchor, which expires at "
            f"{anchor.certificate.not_valid_after_utc.isoformat()}; choose a shorter validity"
        )
    key = key or ec.generate_private_key(ec.SECP256R1())
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"an issuer key must be ECDSA P-256, not {key_algorithm(key)}")
    subject = _common_name(issuer_common_name(trust_domain, control_plane_ns))
    cert = _ca_certificate(subject, key, anchor, now=now, validity=validity, path_length=0)
    return Credentials(cert, key)


def load_credentials(cert: PemFile, key: PemFile, *, now: datetime) -> Credentials:
    """Return the CA in ``cert`` (first certificate; the rest is its chain) with ``key``.

    Raises ``CertError`` naming the file unless the key matches the certificate
    and the certificate is a CA valid at ``now``.
    """
    first, *chain = load_certificates(cert)
    creds = Credentials(first, load_private_key(key), tuple(chain))
    if first.public_key() != creds.key.public_key():
        raise CertError(key.path, f"the key does not match the certificate in {cert.path}")
    problem = _signing_problem(creds, now)
    if problem:
        raise CertError(cert.path, f"{describe(first)}: {problem}")
    return creds


def _key_problem(cert: x509.Certificate, *, rsa_allowed: bool) -> str | None:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return None
    if rsa_allowed and isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return None
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        name = key_algorithm(key)
    else:
        name = type(key).__name__
    wanted = "ECDSA P-256 or RSA >= 2048" if rsa_allowed else "ECDSA P-256"
    return f"unsupported key {name}; {'trust anchors' if rsa_allowed else 'issuers'} use {wanted}"


def check_issuer(
    anchors: PemFile, issuer_cert: PemFile, issuer_key: PemFile, *, now: datetime
) -> list[CertError]:
    """Return every problem that stops the issuer from serving under ``anchors`` at ``now``.

    An empty list means: the anchors are usable CAs, the issuer is a CA valid at
    ``now`` whose chain leads to one of the anchors, and the key matches it.
    The chain is judged only when the anchors are usable and the issuer is in date,
    so one cause is not reported twice.
    """
    problems: list[CertError] = []
    roots: list[x509.Certificate] = []
    try:
        roots = load_certificates(anchors)
    except CertError as e:
        problems.append(e)
    for root in roots:
        key_problem = _key_problem(root, rsa_allowed=True)
        for problem in (validity_problem(root, now), ca_problem(root), key_problem):
            if problem:
                problems.append(
                    CertError(anchors.path, f"trust anchor {describe(root)}: {problem}")
                )

    anchors_usable = not problems

    certs: list[x509.Certificate] = []
    try:
        certs = load_certificates(issuer_cert)
    except CertError as e:
        problems.append(e)
    if certs:
        issuer, *chain = certs
        for problem in (validity_problem(issuer, now), ca_problem(issuer)):
            if problem:
                problems.append(CertError(issuer_cert.path, f"{describe(issuer)}: {problem}"))
        problem = _key_problem(issuer, rsa_allowed=False)
        if problem:
            problems.append(CertError(issuer_cert.path, problem))
        if roots and anchors_usable and validity_problem(issuer, now) is None:
            try:
                chain_to_anchor(issuer, chain, roots, now=now)
            except ChainError as e:
                problems.append(
                    CertError(
                        issuer_cert.path,
                        f"broken chain to the trust anchors in {anchors.path}: {e}",
                    )
                )

    try:
        key = load_private_key(issuer_key)
    except CertError as e:
        problems.append(e)
    else:
        if certs and certs[0].public_key() != key.public_key():
            problems.append(
                CertError(
                    issuer_key.path, f"the key does not match the certificate in {issuer_cert.path}"
                )
            )
    return problems
