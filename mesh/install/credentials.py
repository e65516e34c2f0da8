"""The secrets an install carries: the identity trust anchors and issuer, the webhook's cert.

Identity material comes from the user's PEM files (checked with the identity
module, which names the file and the problem) or is generated here. The proxy
injector's serving certificate is always generated: a self-signed ECDSA P-256
certificate for ``<service>.<namespace>.svc`` that is also the webhook's
caBundle. Pure: the clock is a parameter and nothing touches the file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mesh.identity import CertError, PemFile, check_issuer, create_anchor, create_issuer
from mesh.identity.names import issuer_common_name
from mesh.identity.pem import certificates_pem, load_certificates, private_key_pem

__all__ = [
    "WEBHOOK_CERT_VALIDITY",
    "IdentityError",
    "IdentityMaterial",
    "WebhookCert",
    "create_webhook_cert",
    "generate_identity",
    "load_identity",
    "webhook_dns_names",
]

WEBHOOK_CERT_VALIDITY = timedelta(days=365)
"""How long the generated webhook serving certificate is valid."""


class IdentityError(ValueError):
    """Identity files that cannot serve; ``problems`` lists each, naming its file."""

    def __init__(self, problems: list[CertError]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class IdentityMaterial:
    """PEM trust anchors and issuer for one cluster; ``generated`` if install made them."""

    trust_anchors_pem: bytes
    issuer_cert_pem: bytes
    issuer_key_pem: bytes
    generated: bool = False
    notes: tuple[str, ...] = ()
    """Things worth telling the user (on stderr) that do not stop the install."""


def generate_identity(
    trust_domain: str, control_plane_ns: str, *, now: datetime
) -> IdentityMaterial:
    """A new trust anchor and an issuer it signed, for ``trust_domain``."""
    anchor = create_anchor(trust_domain, now=now)
    issuer = create_issuer(anchor, trust_domain, now=now, control_plane_ns=control_plane_ns)
    return IdentityMaterial(
        trust_anchors_pem=anchor.certificate_pem(),
        issuer_cert_pem=issuer.certificate_pem(),
        issuer_key_pem=issuer.key_pem(),
        generated=True,
    )


def load_identity(
    anchors: PemFile,
    issuer_cert: PemFile,
    issuer_key: PemFile,
    *,
    trust_domain: str,
    control_plane_ns: str,
    now: datetime,
) -> IdentityMaterial:
    """The user's files, if the issuer can serve under the anchors at ``now``.

    Raises ``IdentityError`` listing every problem. An issuer whose subject is
    not ``identity.<ns>.<trust-domain>`` is accepted (Linkerd accepts it too, and
    the seeds rely on it) with a note.
    """
    problems = check_issuer(anchors, issuer_cert, issuer_key, now=now)
    if problems:
        raise IdentityError(problems)
    notes: list[str] = []
    expected = issuer_common_name(trust_domain, control_plane_ns)
    subject = load_certificates(issuer_cert)[0].subject
    names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if expected not in names:
        notes.append(
            f"{issuer_cert.path}: the issuer is {subject.rfc4514_string() or 'unnamed'}, "
            f"not CN={expected}; identities still end with the trust domain {trust_domain}"
        )
    return IdentityMaterial(
        trust_anchors_pem=anchors.data,
        issuer_cert_pem=issuer_cert.data,
        issuer_key_pem=issuer_key.data,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class WebhookCert:
    """A serving certificate and key as PEM; the certificate is its own CA bundle."""

    cert_pem: bytes
    key_pem: bytes


def webhook_dns_names(service: str, namespace: str, cluster_domain: str) -> list[str]:
    """The names the API server may use for a webhook service."""
    return [
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    ]


def create_webhook_cert(
    service: str,
    namespace: str,
    cluster_domain: str,
    *,
    now: datetime,
    validity: timedelta = WEBHOOK_CERT_VALIDITY,
) -> WebhookCert:
    """A self-signed ECDSA P-256 certificate for ``service`` in ``namespace``, valid from ``now``.

    It is marked as a CA (so it can be a caBundle on its own) and for server auth.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    names = webhook_dns_names(service, namespace, cluster_domain)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return WebhookCert(cert_pem=certificates_pem(cert), key_pem=private_key_pem(key))
