"""Verifying a peer's chain against the trust anchors (CONF-32), as the proxy does."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from cryptography import x509

from mesh.identity import (
    Accepted,
    ChainError,
    Credentials,
    IssuingPolicy,
    TokenReview,
    create_anchor,
    create_issuer,
    issue,
    review,
    verify_peer,
)
from tests.identity.support import NOW, TRUST_DOMAIN, make_cert, make_csr

IDENTITY = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
TOKEN = TokenReview(True, "system:serviceaccount:emojivoto:web", ("identity.l5d.io",))


@dataclass(frozen=True)
class Pki:
    anchor: Credentials
    issuer: Credentials
    impostor_anchor: Credentials
    impostor_issuer: Credentials


@dataclass(frozen=True)
class Peer:
    chain: list[x509.Certificate]
    anchors: list[x509.Certificate]


def _leaf(issuer: Credentials, trust_domain: str = TRUST_DOMAIN) -> x509.Certificate:
    identity = IDENTITY.replace(TRUST_DOMAIN, trust_domain)
    csr = make_csr([x509.DNSName(identity)])
    decision = review(IssuingPolicy(trust_domain), identity, TOKEN, csr)
    assert isinstance(decision, Accepted), decision
    return issue(issuer, decision, now=NOW).leaf


def _ours(p: Pki) -> Peer:
    return Peer([_leaf(p.issuer), p.issuer.certificate], [p.anchor.certificate])


def _other_mesh(p: Pki) -> Peer:
    leaf = _leaf(p.impostor_issuer)
    return Peer([leaf, p.impostor_issuer.certificate], [p.anchor.certificate])


def _other_mesh_with_its_root(p: Pki) -> Peer:
    leaf = _leaf(p.impostor_issuer)
    chain = [leaf, p.impostor_issuer.certificate, p.impostor_anchor.certificate]
    return Peer(chain, [p.anchor.certificate])


def _ours_with_root(p: Pki) -> Peer:
    return Peer(
        [_leaf(p.issuer), p.issuer.certificate, p.anchor.certificate], [p.anchor.certificate]
    )


def _other_trust_domain(p: Pki) -> Peer:
    root = create_anchor("east.example", now=NOW)
    issuer = create_issuer(root, "east.example", now=NOW)
    return Peer([_leaf(issuer, "east.example"), issuer.certificate], [p.anchor.certificate])


def _both_anchors(p: Pki) -> Peer:
    root = create_anchor("east.example", now=NOW)
    issuer = create_issuer(root, "east.example", now=NOW)
    leaf = _leaf(issuer, "east.example")
    return Peer([leaf, issuer.certificate], [p.anchor.certificate, root.certificate])


def _no_intermediate(p: Pki) -> Peer:
    return Peer([_leaf(p.issuer)], [p.anchor.certificate])


def _ca_as_leaf(p: Pki) -> Peer:
    return Peer([p.issuer.certificate], [p.anchor.certificate])


def _no_san(p: Pki) -> Peer:
    leaf = make_cert("web", p.issuer, ca=False, key_cert_sign=False)
    return Peer([leaf.certificate, p.issuer.certificate], [p.anchor.certificate])


def _two_sans(p: Pki) -> Peer:
    leaf = make_cert("web", p.issuer, ca=False, key_cert_sign=False, dns_names=["a.b", "c.d"])
    return Peer([leaf.certificate, p.issuer.certificate], [p.anchor.certificate])


def _below_pathlen_zero(p: Pki) -> Peer:
    deep = make_cert("deep", p.issuer, path_length=None)
    leaf = make_cert("web", deep, ca=False, key_cert_sign=False, dns_names=[IDENTITY])
    chain = [leaf.certificate, deep.certificate, p.issuer.certificate]
    return Peer(chain, [p.anchor.certificate])


def _signed_by_a_leaf(p: Pki) -> Peer:
    signer = make_cert("signer", p.issuer, ca=False, key_cert_sign=False, dns_names=["x.y"])
    leaf = make_cert("web", signer, ca=False, key_cert_sign=False, dns_names=[IDENTITY])
    return Peer([leaf.certificate, signer.certificate], [p.anchor.certificate])


def _nothing(p: Pki) -> Peer:
    return Peer([], [p.anchor.certificate])


def _no_anchors(p: Pki) -> Peer:
    return Peer([_leaf(p.issuer), p.issuer.certificate], [])


ACCEPTED = [
    pytest.param(_ours, IDENTITY, id="our-mesh"),
    pytest.param(_ours_with_root, IDENTITY, id="root-sent-along"),
    pytest.param(_both_anchors, IDENTITY.replace(TRUST_DOMAIN, "east.example"), id="bundle"),
]

REFUSED = [
    pytest.param(_other_mesh, NOW, "signed by a different key than the trust anchor", id="CONF-32"),
    pytest.param(
        _other_mesh_with_its_root, NOW, "signed by a different key", id="impostor-root-sent-along"
    ),
    pytest.param(_other_trust_domain, NOW, "which is not a trust anchor", id="other-anchor"),
    pytest.param(_no_intermediate, NOW, "not a trust anchor and not in the chain", id="no-chain"),
    pytest.param(_ours, NOW + timedelta(hours=25), "DNS:web.emojivoto", id="leaf-expired"),
    pytest.param(_ours, NOW - timedelta(minutes=1), "not valid before", id="leaf-too-early"),
    pytest.param(_ca_as_leaf, NOW, "is a CA certificate", id="ca-as-leaf"),
    pytest.param(_no_san, NOW, "has 0 DNS SANs", id="no-san"),
    pytest.param(_two_sans, NOW, "has 2 DNS SANs", id="two-sans"),
    pytest.param(_below_pathlen_zero, NOW, "allows 0 CA(s) below it, found 1", id="pathlen"),
    pytest.param(_signed_by_a_leaf, NOW, "not a CA: basicConstraints ca=false", id="leaf-signer"),
    pytest.param(_nothing, NOW, "presented no certificate", id="empty"),
    pytest.param(_no_anchors, NOW, "no trust anchors", id="no-anchors"),
]


@pytest.fixture
def pki(
    anchor: Credentials,
    issuer: Credentials,
    impostor_anchor: Credentials,
    impostor_issuer: Credentials,
) -> Pki:
    return Pki(anchor, issuer, impostor_anchor, impostor_issuer)


@pytest.mark.parametrize(("build", "identity"), ACCEPTED)
def test_verify_peer_accepts(pki: Pki, build: Callable[[Pki], Peer], identity: str) -> None:
    peer = build(pki)
    assert verify_peer(peer.chain, peer.anchors, now=NOW) == identity


@pytest.mark.parametrize(("build", "now", "reason"), REFUSED)
def test_verify_peer_refuses(
    pki: Pki, build: Callable[[Pki], Peer], now: datetime, reason: str
) -> None:
    peer = build(pki)
    with pytest.raises(ChainError) as caught:
        verify_peer(peer.chain, peer.anchors, now=now)
    assert reason in str(caught.value)


def test_an_expired_anchor_trusts_nothing(anchor: Credentials) -> None:
    later = anchor.certificate.not_valid_after_utc + timedelta(seconds=1)
    long_issuer = make_cert("long", anchor, not_after=later + timedelta(days=1))
    late_leaf = make_cert(
        "web",
        long_issuer,
        ca=False,
        key_cert_sign=False,
        dns_names=[IDENTITY],
        not_after=later + timedelta(days=1),
    )
    chain = [late_leaf.certificate, long_issuer.certificate]
    with pytest.raises(
        ChainError, match=re.escape("trust anchor CN=root.cluster.local is expired")
    ):
        verify_peer(chain, [anchor.certificate], now=later)
