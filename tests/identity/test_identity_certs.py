"""Trust anchors and issuers: what is created, what loads, and what ``check_issuer`` reports."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from mesh.identity import (
    DEFAULT_CLOCK_SKEW,
    CertError,
    Credentials,
    PemFile,
    check_issuer,
    create_anchor,
    create_issuer,
    load_credentials,
    load_private_key,
)
from tests.identity.support import NOW, TRUST_DOMAIN, make_cert


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _constraints(cert: x509.Certificate) -> x509.BasicConstraints:
    return cert.extensions.get_extension_for_class(x509.BasicConstraints).value


def test_anchor_is_a_self_signed_p256_root(anchor: Credentials) -> None:
    cert = anchor.certificate
    assert _cn(cert) == "root.cluster.local"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert _constraints(cert) == x509.BasicConstraints(ca=True, path_length=1)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert isinstance(anchor.key, ec.EllipticCurvePrivateKey)
    assert isinstance(anchor.key.curve, ec.SECP256R1)
    assert cert.not_valid_before_utc == NOW - DEFAULT_CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)


def test_anchor_options() -> None:
    anchor = create_anchor(
        "east.example", now=NOW, validity=timedelta(hours=1), common_name="my root"
    )
    assert _cn(anchor.certificate) == "my root"
    assert anchor.certificate.not_valid_after_utc == NOW + timedelta(hours=1)
    with pytest.raises(ValueError, match="validity must be positive"):
        create_anchor("east.example", now=NOW, validity=timedelta(0))
    with pytest.raises(ValueError, match="trust domain"):
        create_anchor("East", now=NOW)


def test_issuer_is_an_intermediate_signed_by_the_anchor(
    anchor: Credentials, issuer: Credentials
) -> None:
    cert = issuer.certificate
    assert _cn(cert) == "identity.linkerd.cluster.local"
    cert.verify_directly_issued_by(anchor.certificate)
    assert _constraints(cert) == x509.BasicConstraints(ca=True, path_length=0)
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)
    other = create_issuer(anchor, "west.example", now=NOW, control_plane_ns="isthmus")
    assert _cn(other.certificate) == "identity.isthmus.west.example"


@pytest.mark.parametrize(
    ("now", "validity", "message"),
    [
        pytest.param(NOW + timedelta(days=3651), timedelta(hours=1), "expired", id="expired"),
        pytest.param(
            NOW + timedelta(days=3600), timedelta(days=365), "outlive", id="outlives-anchor"
        ),
        pytest.param(NOW, timedelta(seconds=-1), "positive", id="negative-validity"),
    ],
)
def test_create_issuer_refuses(
    anchor: Credentials, now: datetime, validity: timedelta, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_issuer(anchor, TRUST_DOMAIN, now=now, validity=validity)


def test_create_issuer_refuses_a_non_ca_anchor() -> None:
    leaf = make_cert("leaf", None, ca=False, key_cert_sign=False)
    with pytest.raises(ValueError, match="not a CA"):
        create_issuer(leaf, TRUST_DOMAIN, now=NOW)


def test_credentials_round_trip_through_pem(anchor: Credentials) -> None:
    loaded = load_credentials(
        PemFile("ca.crt", anchor.certificate_pem()), PemFile("ca.key", anchor.key_pem()), now=NOW
    )
    assert loaded.certificate == anchor.certificate
    assert loaded.key.private_numbers() == anchor.key.private_numbers()
    assert anchor.key_pem().startswith(b"-----BEGIN EC PRIVATE KEY-----")


def test_load_credentials_names_the_bad_file(anchor: Credentials, issuer: Credentials) -> None:
    with pytest.raises(CertError, match="does not match") as caught:
        load_credentials(
            PemFile("ca.crt", anchor.certificate_pem()),
            PemFile("issuer.key", issuer.key_pem()),
            now=NOW,
        )
    assert caught.value.path == "issuer.key"
    with pytest.raises(CertError, match="expired") as caught:
        load_credentials(
            PemFile("ca.crt", anchor.certificate_pem()),
            PemFile("ca.key", anchor.key_pem()),
            now=NOW + timedelta(days=4000),
        )
    assert caught.value.path == "ca.crt"


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, fmt: str) -> bytes:
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }
    return key.private_bytes(serialization.Encoding.PEM, formats[fmt], serialization.NoEncryption())


_EC_PARAMS = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _pem(_ec_key(), "pkcs8"), id="pkcs8-ec-step-like"),
        pytest.param(lambda: _pem(_ec_key(), "traditional"), id="sec1-ec"),
        pytest.param(lambda: _EC_PARAMS + _pem(_ec_key(), "traditional"), id="openssl-ecparam"),
        pytest.param(lambda: _pem(_RSA, "traditional"), id="rsa-traditional"),
        pytest.param(lambda: _pem(_RSA, "pkcs8"), id="rsa-pkcs8"),
    ],
)
def test_private_key_formats_load(make: Callable[[], bytes]) -> None:
    assert load_private_key(PemFile("k.pem", make())) is not None


def _encrypted() -> bytes:
    return _ec_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def _ed25519() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: b"", "no PEM blocks", id="empty"),
        pytest.param(lambda: b"hello", "no PEM blocks", id="garbage"),
        pytest.param(_encrypted, "encrypted", id="encrypted"),
        pytest.param(_ed25519, "unsupported key type Ed25519", id="ed25519"),
        pytest.param(
            lambda: _pem(_ec_key(), "pkcs8") + _pem(_ec_key(), "pkcs8"), "2 private keys", id="two"
        ),
        pytest.param(
            lambda: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "unreadable PEM private key",
            id="corrupt",
        ),
    ],
)
def test_unusable_keys_are_named(make: Callable[[], bytes], message: str) -> None:
    with pytest.raises(CertError, match=message) as caught:
        load_private_key(PemFile("issuer.key", make()))
    assert caught.value.path == "issuer.key"
    assert str(caught.value).startswith("issuer.key: ")


def test_a_certificate_is_not_a_key(anchor: Credentials) -> None:
    with pytest.raises(CertError, match=re.escape("no PRIVATE KEY block (found CERTIFICATE)")):
        load_private_key(PemFile("ca.crt", anchor.certificate_pem()))


# check_issuer scenarios: each builds the three files and names the problems expected.


@dataclass(frozen=True)
class Pki:
    anchor: Credentials
    issuer: Credentials
    impostor_issuer: Credentials


@dataclass(frozen=True)
class Files:
    anchors: bytes
    cert: bytes
    key: bytes


def _files(anchor: Credentials, issuer: Credentials) -> Files:
    return Files(anchor.certificate_pem(), issuer.certificate_pem(), issuer.key_pem())


def _ok(p: Pki) -> Files:
    return _files(p.anchor, p.issuer)


def _two_anchors(p: Pki) -> Files:
    other = create_anchor("other.example", now=NOW)
    bundle = other.certificate_pem() + p.anchor.certificate_pem()
    return Files(bundle, p.issuer.certificate_pem(), p.issuer.key_pem())


def _rsa_anchor(p: Pki) -> Files:
    root = create_anchor(TRUST_DOMAIN, now=NOW, key=_RSA)
    return _files(root, create_issuer(root, TRUST_DOMAIN, now=NOW))


def _impostor_issuer(p: Pki) -> Files:
    return _files(p.anchor, p.impostor_issuer)


def _unrelated_anchor(p: Pki) -> Files:
    return _files(create_anchor("other.example", now=NOW), p.issuer)


def _long_issuer(p: Pki) -> Files:
    return _files(p.anchor, make_cert("late", p.anchor, not_after=NOW + timedelta(days=9999)))


def _issuer(**kwargs: Any) -> Callable[[Pki], Files]:
    def build(p: Pki) -> Files:
        return _files(p.anchor, make_cert("odd", p.anchor, **kwargs))

    return build


def _anchor(**kwargs: Any) -> Callable[[Pki], Files]:
    def build(p: Pki) -> Files:
        return _files(make_cert("odd-root", None, **kwargs), p.issuer)

    return build


def _p384_anchor(p: Pki) -> Files:
    root = create_anchor(TRUST_DOMAIN, now=NOW, key=ec.generate_private_key(ec.SECP384R1()))
    return _files(root, p.issuer)


def _wrong_key(p: Pki) -> Files:
    return Files(p.anchor.certificate_pem(), p.issuer.certificate_pem(), p.anchor.key_pem())


def _unreadable(p: Pki) -> Files:
    return Files(b"not pem", p.issuer.key_pem(), b"")


def _with_intermediate(p: Pki) -> Files:
    middle = make_cert("middle", p.anchor, path_length=0)
    issuer = make_cert("below-middle", middle)
    bundle = issuer.certificate_pem() + middle.certificate_pem()
    return Files(p.anchor.certificate_pem(), bundle, issuer.key_pem())


def _missing_intermediate(p: Pki) -> Files:
    middle = make_cert("middle", p.anchor, path_length=0)
    return _files(p.anchor, make_cert("below-middle", middle))


_IMPOSTOR = (
    "broken chain to the trust anchors in ca.crt: CN=identity.linkerd.cluster.local "
    "is signed by a different key than the trust anchor named CN=root.cluster.local"
)

CHECKS = [
    pytest.param(_ok, NOW, [], id="ok"),
    pytest.param(_two_anchors, NOW, [], id="anchor-bundle"),
    pytest.param(_rsa_anchor, NOW, [], id="rsa-anchor"),
    pytest.param(_with_intermediate, NOW, [], id="intermediate-in-issuer-file"),
    pytest.param(_issuer(key_cert_sign=None), NOW, [], id="no-key-usage-is-still-a-ca"),
    pytest.param(_impostor_issuer, NOW, [("issuer.crt", _IMPOSTOR)], id="another-anchor"),
    pytest.param(
        _unrelated_anchor,
        NOW,
        [("issuer.crt", "issued by CN=root.cluster.local, which is not a trust anchor")],
        id="unrelated-anchor",
    ),
    pytest.param(
        _missing_intermediate,
        NOW,
        [("issuer.crt", "issued by CN=middle, which is not a trust anchor and not in the chain")],
        id="missing-intermediate",
    ),
    pytest.param(
        _ok,
        NOW + timedelta(days=366),
        [("issuer.crt", "CN=identity.linkerd.cluster.local: expired at 2031-01-01")],
        id="issuer-expired",
    ),
    pytest.param(
        _ok,
        NOW - timedelta(hours=1),
        [
            ("ca.crt", "trust anchor CN=root.cluster.local: not valid before"),
            ("issuer.crt", "not valid before 2029-12-31T23:59:40+00:00"),
        ],
        id="not-yet-valid",
    ),
    pytest.param(
        _long_issuer,
        NOW + timedelta(days=3651),
        [("ca.crt", "trust anchor CN=root.cluster.local: expired at")],
        id="anchor-expired",
    ),
    pytest.param(
        _issuer(ca=False),
        NOW,
        [("issuer.crt", "CN=odd: not a CA: basicConstraints ca=false")],
        id="issuer-not-a-ca",
    ),
    pytest.param(
        _issuer(ca=None),
        NOW,
        [("issuer.crt", "not a CA: no basicConstraints extension")],
        id="issuer-without-basic-constraints",
    ),
    pytest.param(
        _issuer(key_cert_sign=False),
        NOW,
        [("issuer.crt", "not a CA: keyUsage lacks keyCertSign")],
        id="issuer-without-key-cert-sign",
    ),
    pytest.param(
        _issuer(key=_RSA),
        NOW,
        [("issuer.crt", "unsupported key RSA 2048; issuers use ECDSA P-256")],
        id="rsa-issuer",
    ),
    pytest.param(
        _anchor(ca=False),
        NOW,
        [("ca.crt", "trust anchor CN=odd-root: not a CA: basicConstraints ca=false")],
        id="anchor-not-a-ca",
    ),
    pytest.param(
        _p384_anchor,
        NOW,
        [("ca.crt", "unsupported key ECDSA P-384; trust anchors use ECDSA P-256 or RSA >= 2048")],
        id="p384-anchor",
    ),
    pytest.param(
        _wrong_key,
        NOW,
        [("issuer.key", "the key does not match the certificate in issuer.crt")],
        id="key-mismatch",
    ),
    pytest.param(
        _unreadable,
        NOW,
        [
            ("ca.crt", "unreadable PEM: no CERTIFICATE block (no PEM blocks"),
            ("issuer.crt", "unreadable PEM: no CERTIFICATE block (found EC PRIVATE KEY)"),
            ("issuer.key", "unreadable PEM: no PRIVATE KEY block (no PEM blocks"),
        ],
        id="unreadable",
    ),
]


@pytest.mark.parametrize(("build", "now", "expected"), CHECKS)
def test_check_issuer(
    anchor: Credentials,
    issuer: Credentials,
    impostor_issuer: Credentials,
    build: Callable[[Pki], Files],
    now: datetime,
    expected: list[tuple[str, str]],
) -> None:
    files = build(Pki(anchor, issuer, impostor_issuer))
    problems = check_issuer(
        PemFile("ca.crt", files.anchors),
        PemFile("issuer.crt", files.cert),
        PemFile("issuer.key", files.key),
        now=now,
    )
    assert [p.path for p in problems] == [path for path, _ in expected], problems
    for problem, (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.reason
