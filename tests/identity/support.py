"""Builders for certificates and CSRs the identity core would never make itself.

Every certificate here is made at ``NOW``; tests move the clock by passing a
different ``now`` rather than by waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from mesh.identity import Credentials
from mesh.identity.pem import SigningKey

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TRUST_DOMAIN = "cluster.local"


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_cert(
    common_name: str,
    signer: Credentials | None,
    *,
    key: SigningKey | None = None,
    ca: bool | None = True,
    path_length: int | None = None,
    key_cert_sign: bool | None = True,
    not_before: datetime = NOW - timedelta(minutes=1),
    not_after: datetime = NOW + timedelta(days=30),
    dns_names: Sequence[str] = (),
) -> Credentials:
    """A certificate signed by ``signer`` (self-signed if ``None``); ``None`` omits an extension."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer.certificate.subject if signer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        constraints = x509.BasicConstraints(ca=ca, path_length=path_length if ca else None)
        builder = builder.add_extension(constraints, critical=True)
    if key_cert_sign is not None:
        builder = builder.add_extension(_usage(cert_sign=key_cert_sign), critical=True)
    if dns_names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(signer.key if signer else key, hashes.SHA256())
    return Credentials(cert, key)


def make_csr(
    names: Sequence[x509.GeneralName] | None,
    *,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    pem: bool = False,
) -> bytes:
    """A CSR (DER unless ``pem``) with the given SANs (``None``: no SAN extension) and key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    return csr.public_bytes(encoding)
