"""Certificates the mesh suite makes itself (with ``cryptography``, never the mesh's code).

``leaf`` signs a workload certificate for an identity under an issuer's PEM files, as a
proxy would hold one; ``csr`` builds the request a proxy sends to the identity service;
``tls_get`` is a meshed client from the host: mTLS to a pod with a given leaf, then one
HTTP/1.1 GET.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.adapters import IssuerFiles

#: a leaf made here is valid this long (the test using it takes seconds).
LEAF_LIFETIME = timedelta(hours=1)
#: connecting, handshaking and reading the answer of ``tls_get``, each.
TLS_TIMEOUT = 10.0


@dataclass(frozen=True)
class Leaf:
    identity: str
    chain: Path
    """Leaf then issuer, PEM."""
    key: Path


def _load_issuer(issuer: IssuerFiles) -> tuple[x509.Certificate, Any]:
    cert = x509.load_pem_x509_certificate(issuer.cert.read_bytes())
    key = serialization.load_pem_private_key(issuer.key.read_bytes(), password=None)
    return cert, key


def leaf(issuer: IssuerFiles, identity: str, directory: Path) -> Leaf:
    """A workload certificate naming ``identity`` (its single DNS SAN), signed by ``issuer``."""
    issuer_cert, issuer_key = _load_issuer(issuer)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    chain = directory / "chain.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + issuer_cert.public_bytes(serialization.Encoding.PEM)
    )
    key_path = directory / "leaf.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Leaf(identity, chain, key_path)


def csr(identity: str) -> bytes:
    """A DER PKCS#10 request with a fresh P-256 key whose single DNS SAN is ``identity``."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.DER)


def dns_sans(der_or_cert: bytes | x509.Certificate) -> list[str]:
    cert = (
        der_or_cert
        if isinstance(der_or_cert, x509.Certificate)
        else x509.load_der_x509_certificate(der_or_cert)
    )
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in ext.value.get_values_for_type(x509.DNSName)]


@dataclass(frozen=True)
class TlsOutcome:
    """What a TLS client from the host saw."""

    handshake: bool
    status: int | None = None
    body: dict[str, Any] | None = None
    server_chain: tuple[str, ...] = ()
    """The server leaf's DNS SANs, once the handshake verified it."""
    server_issuer: str | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status} {json.dumps(self.body)[:300]}"
        return f"handshake={'done' if self.handshake else 'failed'}, error={self.error}"


def tls_get(
    address: str, port: int, client: Leaf, server_identity: str, anchor: Path
) -> TlsOutcome:
    """mTLS to ``address:port`` as ``client``, expecting ``server_identity`` (also the SNI)
    under ``anchor``; then ``GET /``. Never raises for network or TLS failures."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=str(anchor))
    context.load_cert_chain(str(client.chain), str(client.key))
    handshake = False
    sans: tuple[str, ...] = ()
    issuer: str | None = None
    try:
        with (
            socket.create_connection((address, port), timeout=TLS_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=server_identity) as tls,
        ):
            handshake = True
            der = tls.getpeercert(binary_form=True)
            if der:
                cert = x509.load_der_x509_certificate(der)
                sans = tuple(dns_sans(cert))
                issuer = cert.issuer.rfc4514_string()
            tls.sendall(
                f"GET / HTTP/1.1\r\nHost: {address}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    except (OSError, ssl.SSLError) as e:
        return TlsOutcome(handshake, None, None, sans, issuer, f"{type(e).__name__}: {e}")
    if not data:
        return TlsOutcome(
            handshake, None, None, sans, issuer, "connection closed without an answer"
        )
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return TlsOutcome(handshake, None, None, sans, issuer, f"not HTTP: {data[:200]!r}")
    try:
        decoded = json.loads(_dechunk(head, body))
    except ValueError:
        decoded = {"raw": body[:300].decode(errors="replace")}
    return TlsOutcome(handshake, status, decoded, sans, issuer)


def _dechunk(head: bytes, body: bytes) -> bytes:
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out
