"""Interoperability with ``openssl``: its anchors and issuers load and check, ours verify there."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from mesh.cli import main
from mesh.identity import (
    Accepted,
    IssuingPolicy,
    PemFile,
    TokenReview,
    check_issuer,
    create_anchor,
    issue,
    load_certificates,
    load_credentials,
    review,
    verify_peer,
)
from tests.identity.support import TRUST_DOMAIN, make_csr

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")

IDENTITY = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"

_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_issuer]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
"""


def _openssl(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, check=False, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"
    return done.stdout


def _sign(cwd: Path, csr: str, ca: str, out: str, extensions: str, days: int = 365) -> None:
    _openssl(
        cwd, "x509", "-req", "-in", csr, "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-set_serial", "2", "-days", str(days), "-extfile", "openssl.cnf",
        "-extensions", extensions, "-out", out,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An anchor and issuer made the way openssl how-tos make them, plus odd variants."""
    d = tmp_path_factory.mktemp("openssl")
    (d / "openssl.cnf").write_text(_CONFIG)
    # The anchor: `ecparam -genkey` writes EC PARAMETERS then a SEC1 EC PRIVATE KEY.
    _openssl(d, "ecparam", "-name", "prime256v1", "-genkey", "-out", "ca.key")
    _openssl(
        d, "req", "-x509", "-new", "-config", "openssl.cnf", "-extensions", "v3_ca",
        "-key", "ca.key", "-subj", "/CN=root.cluster.local", "-days", "3650", "-out", "ca.crt",
    )  # fmt: skip
    # The issuer: a PKCS#8 key (as `genpkey` and step-like tools write it) and a CSR.
    _openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", "issuer.key")  # fmt: skip
    _openssl(d, "req", "-new", "-config", "openssl.cnf", "-key", "issuer.key",
             "-subj", "/CN=identity.linkerd.cluster.local", "-out", "issuer.csr")  # fmt: skip
    _sign(d, "issuer.csr", "ca", "issuer.crt", "v3_issuer")
    _sign(d, "issuer.csr", "ca", "leaf-issuer.crt", "v3_leaf")
    # An RSA anchor with a traditional "RSA PRIVATE KEY".
    _openssl(d, "genrsa", "-traditional", "-out", "rsa-ca.key", "2048")
    _openssl(
        d, "req", "-x509", "-new", "-config", "openssl.cnf", "-extensions", "v3_ca",
        "-key", "rsa-ca.key", "-subj", "/CN=root.rsa", "-days", "3650", "-out", "rsa-ca.crt",
    )  # fmt: skip
    _sign(d, "issuer.csr", "rsa-ca", "rsa-issuer.crt", "v3_issuer")
    return d


def _pem(path: Path) -> PemFile:
    return PemFile(path.name, path.read_bytes())


def _now() -> datetime:
    return datetime.now(UTC)


def _check(pki: Path, anchors: str, cert: str, key: str, now: datetime) -> list[str]:
    problems = check_issuer(_pem(pki / anchors), _pem(pki / cert), _pem(pki / key), now=now)
    return [str(p) for p in problems]


@pytest.mark.parametrize(
    ("anchors", "cert", "key", "days_later", "expected"),
    [
        pytest.param("ca.crt", "issuer.crt", "issuer.key", 0, [], id="ec-anchor"),
        pytest.param("rsa-ca.crt", "rsa-issuer.crt", "issuer.key", 0, [], id="rsa-anchor"),
        pytest.param(
            "ca.crt",
            "leaf-issuer.crt",
            "issuer.key",
            0,
            ["leaf-issuer.crt: CN=identity.linkerd.cluster.local: not a CA: basicConstraints"],
            id="signed-as-a-leaf",
        ),
        pytest.param(
            "ca.crt",
            "issuer.crt",
            "issuer.key",
            400,
            ["issuer.crt: CN=identity.linkerd.cluster.local: expired at"],
            id="expired",
        ),
        pytest.param(
            "rsa-ca.crt",
            "issuer.crt",
            "issuer.key",
            0,
            ["issuer.crt: broken chain to the trust anchors in rsa-ca.crt"],
            id="other-anchor",
        ),
        pytest.param(
            "ca.crt",
            "issuer.crt",
            "ca.key",
            0,
            ["ca.key: the key does not match the certificate in issuer.crt"],
            id="anchor-key-given",
        ),
    ],
)
def test_openssl_files_check(
    pki: Path, anchors: str, cert: str, key: str, days_later: int, expected: list[str]
) -> None:
    problems = _check(pki, anchors, cert, key, _now() + timedelta(days=days_later))
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_our_issuer_from_an_openssl_anchor_verifies_in_openssl(pki: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["identity", "create-issuer", "--anchor-cert", str(pki / "ca.crt"),
         "--anchor-key", str(pki / "ca.key"), "--trust-domain", TRUST_DOMAIN,
         "--out-dir", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    verified = _openssl(out, "verify", "-CAfile", str(pki / "ca.crt"), "issuer.crt")
    assert verified.strip() == "issuer.crt: OK"


def test_leaf_from_an_openssl_issuer_verifies_both_ways(pki: Path, tmp_path: Path) -> None:
    now = _now()
    issuer = load_credentials(_pem(pki / "issuer.crt"), _pem(pki / "issuer.key"), now=now)
    token = TokenReview(True, "system:serviceaccount:emojivoto:web", ("identity.l5d.io",))
    decision = review(
        IssuingPolicy(TRUST_DOMAIN), IDENTITY, token, make_csr([x509.DNSName(IDENTITY)])
    )
    assert isinstance(decision, Accepted), decision
    issued = issue(issuer, decision, now=now)
    (tmp_path / "leaf.crt").write_bytes(issued.leaf_pem())
    (tmp_path / "chain.crt").write_bytes(issued.chain_pem())
    for purpose in ("sslserver", "sslclient"):
        verified = _openssl(
            tmp_path, "verify", "-CAfile", str(pki / "ca.crt"), "-untrusted", "chain.crt",
            "-purpose", purpose, "leaf.crt",
        )  # fmt: skip
        assert verified.strip() == "leaf.crt: OK"
    anchors = load_certificates(_pem(pki / "ca.crt"))
    assert verify_peer([issued.leaf, *issued.chain], anchors, now=now) == IDENTITY
    other = create_anchor(TRUST_DOMAIN, now=now)
    with pytest.raises(ValueError, match="signed by a different key"):
        verify_peer([issued.leaf, *issued.chain], [other.certificate], now=now)
