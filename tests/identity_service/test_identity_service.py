"""The identity service over real gRPC on 127.0.0.1, with a fake token reviewer.

The reviewer is our own seam (``TokenReviewer``); the rest, from the request to
the signed certificate, is the production code (CONF-30, CONF-31).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from mesh.identity import (
    Credentials,
    TokenReview,
    create_anchor,
    create_issuer,
    verify_peer,
)
from mesh.identity.issuing import IssuingPolicy
from mesh.identity.pem import CertError
from mesh.identity.service import (
    FileIssuer,
    IdentityServer,
    IdentityServicer,
    ReviewError,
    ServerSettings,
    main,
)
from mesh.proto import identity_pb2 as pb
from mesh.proto import identity_pb2_grpc as pb_grpc

NOW = datetime.now(UTC).replace(microsecond=0)
TRUST_DOMAIN = "mesh.example"
WEB = "web.shop.serviceaccount.identity.linkerd.mesh.example"
WEB_SA = "system:serviceaccount:shop:web"
AUDIENCE = "identity.l5d.io"
TOKEN = "header.payload.signature"
CALL_TIMEOUT = 5.0
"""How long a test waits for one Certify answer."""


@pytest.fixture(scope="module")
def anchor() -> Credentials:
    return create_anchor(TRUST_DOMAIN, now=NOW)


@pytest.fixture(scope="module")
def issuer(anchor: Credentials) -> Credentials:
    return create_issuer(anchor, TRUST_DOMAIN, now=NOW)


def csr(*dns_names: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if dns_names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass
class FakeReviewer:
    """Answers every review with ``answer`` (or raises ``error``) and records what it was asked."""

    answer: TokenReview = field(
        default_factory=lambda: TokenReview(True, WEB_SA, (AUDIENCE,)),
    )
    error: ReviewError | None = None
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def review(self, token: str, audience: str) -> TokenReview:
        self.asked.append((token, audience))
        if self.error is not None:
            raise self.error
        return self.answer


@dataclass
class FixedIssuer:
    credentials: Credentials

    def current(self, now: datetime) -> Credentials:
        return self.credentials


@dataclass
class Running:
    stub: pb_grpc.IdentityAsyncStub
    reviewer: FakeReviewer

    async def certify(
        self, identity: str = WEB, token: bytes = TOKEN.encode(), request: bytes | None = None
    ) -> pb.CertifyResponse:
        message = pb.CertifyRequest(
            identity=identity,
            token=token,
            certificate_signing_request=csr(identity) if request is None else request,
        )
        return await self.stub.Certify(message, timeout=CALL_TIMEOUT)


async def serve(
    issuer: Credentials, reviewer: FakeReviewer, clock_offset: timedelta = timedelta(0)
) -> AsyncIterator[Running]:
    servicer = IdentityServicer(
        IssuingPolicy(TRUST_DOMAIN),
        FixedIssuer(issuer),
        reviewer,
        lifetime=timedelta(hours=24),
        clock=lambda: NOW + clock_offset,
    )
    server = IdentityServer(servicer, ServerSettings(shutdown_grace=0.5))
    port = await server.start("127.0.0.1:0")
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(pb_grpc.IdentityStub(channel), reviewer)
    finally:
        await channel.close(None)
        await server.stop()


@pytest.fixture
async def running(issuer: Credentials) -> AsyncIterator[Running]:
    async for it in serve(issuer, FakeReviewer()):
        yield it


async def test_certifies_the_tokens_own_identity(
    running: Running, anchor: Credentials, issuer: Credentials
) -> None:
    response = await running.certify()
    leaf = x509.load_der_x509_certificate(response.leaf_certificate)
    chain = [x509.load_der_x509_certificate(c) for c in response.intermediate_certificates]
    assert chain == [issuer.certificate]
    assert verify_peer([leaf, *chain], [anchor.certificate], now=NOW) == WEB
    assert response.valid_until.ToDatetime(tzinfo=UTC) == leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc == NOW + timedelta(hours=24)
    assert running.reviewer.asked == [(TOKEN, AUDIENCE)]


@pytest.mark.parametrize(
    ("reviewer", "kwargs", "code", "message"),
    [
        pytest.param(
            FakeReviewer(),
            {"request": csr("api.shop.serviceaccount.identity.linkerd.mesh.example")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "is not the requested identity",
            id="csr-names-another-identity",
        ),
        pytest.param(
            FakeReviewer(),
            {"request": csr(WEB, "extra.example")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected exactly one DNS name",
            id="csr-names-two",
        ),
        pytest.param(
            FakeReviewer(),
            {"request": b"not a csr"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "the CSR cannot be read",
            id="csr-garbage",
        ),
        pytest.param(
            FakeReviewer(TokenReview(True, "system:serviceaccount:shop:api", (AUDIENCE,))),
            {},
            grpc.StatusCode.PERMISSION_DENIED,
            "belongs to 'system:serviceaccount:shop:api'",
            id="token-of-another-service-account",
        ),
        pytest.param(
            FakeReviewer(TokenReview(False)),
            {},
            grpc.StatusCode.UNAUTHENTICATED,
            "not authenticated",
            id="token-not-authenticated",
        ),
        pytest.param(
            FakeReviewer(TokenReview(True, WEB_SA, ("https://kubernetes.default.svc",))),
            {},
            grpc.StatusCode.UNAUTHENTICATED,
            "lack 'identity.l5d.io'",
            id="token-for-another-audience",
        ),
        pytest.param(
            FakeReviewer(),
            {"identity": "web.shop.serviceaccount.identity.linkerd.other.example"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "is not under this issuer's",
            id="identity-of-another-trust-domain",
        ),
        pytest.param(
            FakeReviewer(),
            {"identity": "web.shop.svc.cluster.local"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a workload identity",
            id="not-an-identity",
        ),
        pytest.param(
            FakeReviewer(error=ReviewError("TokenReview failed: connection refused")),
            {},
            grpc.StatusCode.UNAVAILABLE,
            "connection refused",
            id="review-impossible",
        ),
        pytest.param(
            FakeReviewer(),
            {"token": b""},
            grpc.StatusCode.INVALID_ARGUMENT,
            "token is empty",
            id="empty-token",
        ),
        pytest.param(
            FakeReviewer(),
            {"request": b""},
            grpc.StatusCode.INVALID_ARGUMENT,
            "certificate_signing_request is empty",
            id="empty-csr",
        ),
    ],
)
async def test_refusals(
    issuer: Credentials,
    reviewer: FakeReviewer,
    kwargs: dict[str, str | bytes],
    code: grpc.StatusCode,
    message: str,
) -> None:
    async for it in serve(issuer, reviewer):
        with pytest.raises(aio.AioRpcError) as err:
            await it.certify(**kwargs)  # type: ignore[arg-type]
        assert err.value.code() == code
        assert message in (err.value.details() or "")


async def test_an_expired_issuer_cannot_sign(issuer: Credentials) -> None:
    async for it in serve(issuer, FakeReviewer(), clock_offset=timedelta(days=400)):
        with pytest.raises(aio.AioRpcError) as err:
            await it.certify()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "the issuer cannot sign" in (err.value.details() or "")


def _write(path: Path, data: bytes, mtime_ns: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_file_issuer_reloads_changed_files(
    tmp_path: Path, anchor: Credentials, issuer: Credentials
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _write(cert, issuer.certificate_pem(), 1_000_000_000)
    _write(key, issuer.key_pem(), 1_000_000_000)
    files = FileIssuer(cert, key)
    assert files.current(NOW).certificate == issuer.certificate

    rotated = create_issuer(anchor, TRUST_DOMAIN, now=NOW)
    _write(cert, rotated.certificate_pem(), 2_000_000_000)
    _write(key, rotated.key_pem(), 2_000_000_000)
    assert files.current(NOW).certificate == rotated.certificate

    _write(cert, b"half written", 3_000_000_000)
    assert files.current(NOW).certificate == rotated.certificate


def test_file_issuer_without_a_usable_first_load_fails(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(b"nothing")
    key.write_bytes(b"nothing")
    with pytest.raises(CertError, match="no CERTIFICATE block"):
        FileIssuer(cert, key).current(NOW)


def _files(tmp_path: Path, anchor: Credentials, issuer: Credentials) -> Sequence[str]:
    (tmp_path / "ca.crt").write_bytes(anchor.certificate_pem())
    (tmp_path / "tls.crt").write_bytes(issuer.certificate_pem())
    (tmp_path / "tls.key").write_bytes(issuer.key_pem())
    return [
        "--trust-anchors",
        str(tmp_path / "ca.crt"),
        "--issuer-cert",
        str(tmp_path / "tls.crt"),
        "--issuer-key",
        str(tmp_path / "tls.key"),
        "--trust-domain",
        TRUST_DOMAIN,
    ]


def test_main_refuses_an_issuer_of_another_anchor(
    tmp_path: Path, issuer: Credentials, capsys: pytest.CaptureFixture[str]
) -> None:
    other = create_anchor(TRUST_DOMAIN, now=NOW)
    with pytest.raises(SystemExit) as exit_info:
        main(_files(tmp_path, other, issuer))
    assert exit_info.value.code == 1
    assert "broken chain to the trust anchors" in capsys.readouterr().err


def test_main_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--trust-anchors", str(tmp_path / "absent.crt"), "--issuer-cert", "x"]
    args += ["--issuer-key", "y", "--trust-domain", TRUST_DOMAIN]
    with pytest.raises(SystemExit):
        main(args)
    assert "absent.crt" in capsys.readouterr().err
