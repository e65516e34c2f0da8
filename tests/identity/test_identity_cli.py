"""``isthmus identity``: create-anchor, create-issuer and check, through click's CliRunner."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from mesh.cli import main
from mesh.identity import Credentials, create_anchor, create_issuer
from tests.identity.support import TRUST_DOMAIN


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["identity", *args])


def _anchor(out: Path, *extra: str) -> Result:
    return _run("create-anchor", "--trust-domain", TRUST_DOMAIN, "--out-dir", str(out), *extra)


def _issuer(anchor_dir: Path, out: Path, *extra: str) -> Result:
    return _run(
        "create-issuer",
        "--anchor-cert", str(anchor_dir / "ca.crt"),
        "--anchor-key", str(anchor_dir / "ca.key"),
        "--trust-domain", TRUST_DOMAIN,
        "--out-dir", str(out),
        *extra,
    )  # fmt: skip


def _check(anchors: Path, cert: Path, key: Path) -> Result:
    return _run(
        "check", "--anchors", str(anchors), "--issuer-cert", str(cert), "--issuer-key", str(key)
    )


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(out: Path, creds: Credentials, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.crt").write_bytes(creds.certificate_pem())
    (out / f"{stem}.key").write_bytes(creds.key_pem())


def test_anchor_then_issuer_then_check(tmp_path: Path) -> None:
    result = _anchor(tmp_path / "root")
    assert result.exit_code == 0, result.output
    result = _issuer(tmp_path / "root", tmp_path / "west", "--control-plane-ns", "linkerd")
    assert result.exit_code == 0, result.output
    assert "issuer.crt" in result.output
    west = tmp_path / "west"
    result = _check(tmp_path / "root" / "ca.crt", west / "issuer.crt", west / "issuer.key")
    assert (result.exit_code, result.output) == (0, "OK\n")
    assert _mode(tmp_path / "root" / "ca.key") == 0o600
    assert _mode(west / "issuer.key") == 0o600
    assert _mode(west / "issuer.crt") == 0o644
    subject = _cert(west / "issuer.crt").subject.rfc4514_string()
    assert subject == "CN=identity.linkerd.cluster.local"


def test_validity_options(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    assert _anchor(tmp_path, "--validity", "1000h", "--common-name", "my root").exit_code == 0
    anchor = _cert(tmp_path / "ca.crt")
    assert anchor.subject.rfc4514_string() == "CN=my root"
    lifetime = anchor.not_valid_after_utc - before
    assert timedelta(hours=999) < lifetime <= timedelta(hours=1000)
    assert _issuer(tmp_path, tmp_path / "i", "--validity", "1h30m").exit_code == 0
    issuer = _cert(tmp_path / "i" / "issuer.crt")
    lifetime = issuer.not_valid_after_utc - before
    assert timedelta(minutes=89) < lifetime <= timedelta(minutes=90)


def test_files_are_not_overwritten_without_force(tmp_path: Path) -> None:
    assert _anchor(tmp_path).exit_code == 0
    first = (tmp_path / "ca.key").read_bytes()
    result = _anchor(tmp_path)
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output
    assert "--force" in result.output
    assert (tmp_path / "ca.key").read_bytes() == first
    (tmp_path / "ca.key").chmod(0o644)
    assert _anchor(tmp_path, "--force").exit_code == 0
    assert (tmp_path / "ca.key").read_bytes() != first
    assert _mode(tmp_path / "ca.key") == 0o600


def test_issuer_files_are_not_overwritten_without_force(tmp_path: Path) -> None:
    assert _anchor(tmp_path).exit_code == 0
    (tmp_path / "issuer.key").write_text("precious")
    result = _issuer(tmp_path, tmp_path)
    assert result.exit_code == 1
    assert "issuer.key" in result.output
    assert not (tmp_path / "issuer.crt").exists()


def test_check_reports_each_problem(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ours = create_anchor(TRUST_DOMAIN, now=now)
    theirs = create_anchor(TRUST_DOMAIN, now=now)
    _write(tmp_path, ours, "ca")
    _write(tmp_path, create_issuer(theirs, TRUST_DOMAIN, now=now), "issuer")
    result = _check(tmp_path / "ca.crt", tmp_path / "issuer.crt", tmp_path / "ca.key")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2, result.output
    assert lines[0].startswith(f"{tmp_path / 'issuer.crt'}: broken chain")
    assert lines[1].startswith(f"{tmp_path / 'ca.key'}: the key does not match")


def test_check_reports_an_expired_issuer(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=400)
    anchor = create_anchor(TRUST_DOMAIN, now=past)
    _write(tmp_path, anchor, "ca")
    _write(tmp_path, create_issuer(anchor, TRUST_DOMAIN, now=past), "issuer")
    result = _check(tmp_path / "ca.crt", tmp_path / "issuer.crt", tmp_path / "issuer.key")
    assert result.exit_code == 1
    assert "CN=identity.linkerd.cluster.local: expired at" in result.output


def test_create_issuer_refuses_a_bad_anchor(tmp_path: Path) -> None:
    anchor = create_anchor(TRUST_DOMAIN, now=datetime.now(UTC), validity=timedelta(hours=10))
    _write(tmp_path, anchor, "ca")
    result = _issuer(tmp_path, tmp_path / "out")
    assert result.exit_code == 1
    assert "outlive the trust anchor" in result.output
    (tmp_path / "ca.key").write_bytes(create_anchor(TRUST_DOMAIN, now=datetime.now(UTC)).key_pem())
    result = _issuer(tmp_path, tmp_path / "out", "--validity", "1h")
    assert result.exit_code == 1
    assert "ca.key: the key does not match the certificate" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--trust-domain", "Cluster.Local"], "trust domain", id="trust-domain"),
        pytest.param(["--validity", "10y"], "not a duration like 87600h", id="validity-unit"),
        pytest.param(["--validity", "0h"], "not a positive duration", id="validity-zero"),
        pytest.param(["--validity", ""], "not a duration", id="validity-empty"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = _run("create-anchor", "--trust-domain", "ok", "--out-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "ca.crt").exists()


def test_bad_control_plane_namespace(tmp_path: Path) -> None:
    assert _anchor(tmp_path).exit_code == 0
    result = _issuer(tmp_path, tmp_path / "i", "--control-plane-ns", "linkerd.io")
    assert result.exit_code == 2
    assert "control-plane namespace 'linkerd.io'" in result.output


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (["--help"], ["create-anchor", "create-issuer", "check"]),
        (["create-anchor", "--help"], ["--trust-domain", "--out-dir", "--validity", "--force"]),
        (
            ["create-issuer", "--help"],
            ["--anchor-cert", "--anchor-key", "--control-plane-ns", "[default: linkerd]"],
        ),
        (["check", "--help"], ["--anchors", "--issuer-cert", "--issuer-key", "exits with"]),
    ],
)
def test_help_explains_each_option(command: list[str], options: list[str]) -> None:
    result = _run(*command)
    assert result.exit_code == 0
    for option in options:
        assert option in result.output
