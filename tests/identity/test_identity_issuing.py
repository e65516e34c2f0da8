"""The identity service's decisions (CONF-31) and the certificates it issues (CONF-30)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from mesh.identity import (
    DEFAULT_CLOCK_SKEW,
    Accepted,
    Check,
    Credentials,
    IssuingPolicy,
    Refused,
    TokenReview,
    create_issuer,
    issue,
    parse,
    review,
    verify_peer,
)
from tests.identity.support import NOW, TRUST_DOMAIN, make_csr

IDENTITY = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
POLICY = IssuingPolicy(TRUST_DOMAIN)
TOKEN = TokenReview(True, "system:serviceaccount:emojivoto:web", ("identity.l5d.io",))
_RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


def _csr(*names: str) -> Callable[[], bytes]:
    return lambda: make_csr(_dns(*names))


def _tampered() -> bytes:
    return make_csr(_dns(IDENTITY)).replace(b"web.emojivoto", b"web.emojivotO")


REVIEWS = [
    pytest.param(IDENTITY, TOKEN, _csr(IDENTITY), None, "", id="accepted"),
    pytest.param(
        IDENTITY,
        TOKEN,
        lambda: make_csr(_dns(IDENTITY), pem=True),
        None,
        "",
        id="accepted-pem-csr",
    ),
    pytest.param(
        IDENTITY,
        TOKEN,
        lambda: make_csr(_dns(IDENTITY), key=_RSA_2048),
        None,
        "",
        id="accepted-rsa-2048",
    ),
    pytest.param(
        "web.emojivoto", TOKEN, _csr(IDENTITY), Check.IDENTITY, "not a workload", id="garbage-id"
    ),
    pytest.param(
        "web.emojivoto.serviceaccount.identity.linkerd.east.example",
        TOKEN,
        _csr("web.emojivoto.serviceaccount.identity.linkerd.east.example"),
        Check.IDENTITY,
        "not under this issuer's 'identity.linkerd.cluster.local'",
        id="other-trust-domain",
    ),
    pytest.param(
        "web.emojivoto.serviceaccount.identity.isthmus.cluster.local",
        TOKEN,
        _csr("web.emojivoto.serviceaccount.identity.isthmus.cluster.local"),
        Check.IDENTITY,
        "not under this issuer's",
        id="other-control-plane",
    ),
    pytest.param(
        IDENTITY,
        TokenReview(False),
        _csr(IDENTITY),
        Check.TOKEN_AUTHENTICATED,
        "not authenticated",
        id="unauthenticated",
    ),
    pytest.param(
        IDENTITY,
        TokenReview(True, TOKEN.username, ("https://kubernetes.default.svc",)),
        _csr(IDENTITY),
        Check.TOKEN_AUDIENCE,
        "lack 'identity.l5d.io'",
        id="wrong-audience",
    ),
    pytest.param(
        IDENTITY,
        TokenReview(True, "system:serviceaccount:emojivoto:voting", TOKEN.audiences),
        _csr(IDENTITY),
        Check.TOKEN_SERVICE_ACCOUNT,
        "belongs to 'system:serviceaccount:emojivoto:voting', not "
        "'system:serviceaccount:emojivoto:web'",
        id="token-of-another-service-account",
    ),
    pytest.param(
        IDENTITY,
        TokenReview(True, "system:serviceaccount:other:web", TOKEN.audiences),
        _csr(IDENTITY),
        Check.TOKEN_SERVICE_ACCOUNT,
        "'system:serviceaccount:other:web'",
        id="token-of-another-namespace",
    ),
    pytest.param(
        IDENTITY,
        TokenReview(True, "kubernetes-admin", TOKEN.audiences),
        _csr(IDENTITY),
        Check.TOKEN_SERVICE_ACCOUNT,
        "'kubernetes-admin'",
        id="token-of-a-user",
    ),
    pytest.param(
        IDENTITY,
        TOKEN,
        _csr(IDENTITY, "voting.emojivoto.serviceaccount.identity.linkerd.cluster.local"),
        Check.CSR_SAN,
        "expected exactly one DNS name, found 2",
        id="two-dns-sans",
    ),
    pytest.param(
        IDENTITY,
        TOKEN,
        _csr("voting.emojivoto.serviceaccount.identity.linkerd.cluster.local"),
        Check.CSR_SAN,
        "'voting.emojivoto.serviceaccount.identity.linkerd.cluster.local' is not the requested",
        id="wrong-dns-san",
    ),
    pytest.param(
        IDENTITY,
        TOKEN,
        lambda: make_csr(
            [*_dns(IDENTITY), x509.UniformResourceIdentifier("spiffe://cluster.local/ns/x/sa/y")]
        ),
        Check.CSR_SAN,
        "UniformResourceIdentifier 'spiffe://cluster.local/ns/x/sa/y'",
        id="uri-san",
    ),
    pytest.param(
        IDENTITY,
        TOKEN,
        lambda: make_csr([x509.RFC822Name("web@emojivoto")]),
        Check.CSR_SAN,
        "RFC822Name",
        id="email-san-only",
    ),
    pytest.param(
        IDENTITY, TOKEN, lambda: make_csr(None), Check.CSR_SAN, "no subjectAltName", id="no-san"
    ),
    pytest.param(
        IDENTITY,
        TOKEN,
        lambda: make_csr(_dns(IDENTITY), key=ec.generate_private_key(ec.SECP384R1())),
        Check.CSR_KEY,
        "ECDSA P-384",
        id="p384-key",
    ),
    pytest.param(
        IDENTITY,
        TOKEN,
        lambda: make_csr(_dns(IDENTITY), key=rsa.generate_private_key(65537, 1024)),
        Check.CSR_KEY,
        "RSA 1024",
        id="rsa-1024",
    ),
    pytest.param(IDENTITY, TOKEN, _tampered, Check.CSR_SIGNATURE, "does not verify", id="tampered"),
    pytest.param(
        IDENTITY, TOKEN, lambda: b"\x30\x03junk", Check.CSR_READABLE, "cannot be read", id="junk"
    ),
]


@pytest.mark.parametrize(("requested", "token", "csr", "refused", "reason"), REVIEWS)
def test_review(
    requested: str,
    token: TokenReview,
    csr: Callable[[], bytes],
    refused: Check | None,
    reason: str,
) -> None:
    decision = review(POLICY, requested, token, csr())
    if refused is None:
        assert isinstance(decision, Accepted), decision
        assert decision.identity == parse(requested)
    else:
        assert isinstance(decision, Refused)
        assert decision.check is refused, decision
        assert reason in decision.reason
        assert str(decision).startswith(f"{refused.value}: ")


def _accept(csr: bytes) -> Accepted:
    decision = review(POLICY, IDENTITY, TOKEN, csr)
    assert isinstance(decision, Accepted), decision
    return decision


def test_issued_leaf(anchor: Credentials, issuer: Credentials) -> None:
    now = NOW + timedelta(days=1)
    issued = issue(issuer, _accept(make_csr(_dns(IDENTITY))), now=now)
    leaf = issued.leaf
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value == (
        x509.SubjectAlternativeName(_dns(IDENTITY))
    )
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_encipherment
    assert not usage.key_cert_sign
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert leaf.not_valid_before_utc == now - DEFAULT_CLOCK_SKEW
    assert issued.valid_until == now + timedelta(hours=24)
    assert leaf.issuer == issuer.certificate.subject
    leaf.verify_directly_issued_by(issuer.certificate)
    assert issued.chain == (issuer.certificate,)
    assert issued.leaf_pem().count(b"BEGIN CERTIFICATE") == 1
    assert issued.chain_pem() == issuer.certificate_pem()
    assert verify_peer([leaf, *issued.chain], [anchor.certificate], now=now) == IDENTITY


def test_rsa_leaf_may_encipher_keys(issuer: Credentials) -> None:
    issued = issue(issuer, _accept(make_csr(_dns(IDENTITY), key=_RSA_2048)), now=NOW)
    assert issued.leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_leaf_never_outlives_its_issuer(anchor: Credentials) -> None:
    short = create_issuer(anchor, TRUST_DOMAIN, now=NOW, validity=timedelta(hours=2))
    issued = issue(short, _accept(make_csr(_dns(IDENTITY))), now=NOW + timedelta(hours=1))
    assert issued.valid_until == short.certificate.not_valid_after_utc


def test_lifetime_and_skew_are_parameters(issuer: Credentials) -> None:
    issued = issue(
        issuer,
        _accept(make_csr(_dns(IDENTITY))),
        now=NOW,
        lifetime=timedelta(hours=1),
        clock_skew=timedelta(0),
    )
    assert issued.leaf.not_valid_before_utc == NOW
    assert issued.valid_until == NOW + timedelta(hours=1)


def test_an_expired_issuer_issues_nothing(issuer: Credentials) -> None:
    with pytest.raises(ValueError, match="expired at"):
        issue(issuer, _accept(make_csr(_dns(IDENTITY))), now=NOW + timedelta(days=400))
