"""Reading and writing PEM certificates and keys, whoever made them.

Accepts what ``isthmus``, ``step`` and ``openssl`` write: certificate bundles,
PKCS#8 (``PRIVATE KEY``), SEC1 (``EC PRIVATE KEY``, optionally after an
``EC PARAMETERS`` block) and traditional ``RSA PRIVATE KEY`` keys. Functions take
bytes and a path used only in messages; every failure is a ``CertError`` that
names the path and says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "CertError",
    "PemFile",
    "SigningKey",
    "certificates_pem",
    "key_algorithm",
    "load_certificates",
    "load_private_key",
    "private_key_pem",
]

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""Private keys isthmus can sign with."""

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)


class CertError(ValueError):
    """A certificate or key that cannot be used; ``path`` says which file, ``reason`` why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class PemFile:
    """The contents of a PEM file and the path to name in messages."""

    path: str
    data: bytes


def _labels(data: bytes) -> list[str]:
    return [m.group(1).decode() for m in _BLOCK.finditer(data)]


def _found(data: bytes) -> str:
    labels = _labels(data)
    return f"found {', '.join(labels)}" if labels else "no PEM blocks (-----BEGIN ...-----) at all"


def load_certificates(file: PemFile) -> list[x509.Certificate]:
    """Return every certificate in ``file``, in file order; at least one, or ``CertError``."""
    if "CERTIFICATE" not in _labels(file.data):
        raise CertError(file.path, f"unreadable PEM: no CERTIFICATE block ({_found(file.data)})")
    try:
        return x509.load_pem_x509_certificates(file.data)
    except ValueError as e:
        raise CertError(file.path, f"unreadable PEM certificate: {e}") from None


def load_private_key(file: PemFile) -> SigningKey:
    """Return the single private key in ``file`` (ECDSA or RSA, unencrypted), or ``CertError``."""
    blocks = [m for m in _BLOCK.finditer(file.data) if m.group(1).endswith(b"PRIVATE KEY")]
    if not blocks:
        raise CertError(file.path, f"unreadable PEM: no PRIVATE KEY block ({_found(file.data)})")
    if len(blocks) > 1:
        raise CertError(file.path, f"holds {len(blocks)} private keys; expected one")
    block = blocks[0]
    if block.group(1) == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block.group(0):
        raise CertError(
            file.path,
            "the key is encrypted; use an unencrypted key "
            "(step: --no-password --insecure; openssl: -noenc)",
        )
    try:
        key = serialization.load_pem_private_key(block.group(0), password=None)
    except (ValueError, TypeError) as e:
        raise CertError(file.path, f"unreadable PEM private key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertError(
            file.path, f"unsupported key type {type(key).__name__}; use ECDSA P-256 or RSA"
        )
    return key


def key_algorithm(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | SigningKey) -> str:
    """A short human name for a key's algorithm, such as ``ECDSA P-256`` or ``RSA 2048``."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)}"
    return f"RSA {key.key_size}"


def private_key_pem(key: SigningKey) -> bytes:
    """Encode ``key`` unencrypted as ``step`` does: SEC1 for ECDSA, PKCS#8 for RSA."""
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if isinstance(key, ec.EllipticCurvePrivateKey)
        else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def certificates_pem(*certs: x509.Certificate) -> bytes:
    """Encode ``certs`` as one PEM bundle, in the order given."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
