"""The proxy's identity client: its schedule sans I/O, and certificates from the real service.

CONF-30 (the certificate names the workload identity, under the trust domain)
and CONF-31 (a token of another service account is refused) seen from the proxy.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from mesh.identity import Accepted, issue, parse
from mesh.proxy.backoff import Backoff, BackoffSettings
from mesh.proxy.envconfig import IdentitySettings, ServiceAddr
from mesh.proxy.identity_client import (
    CertifyError,
    IdentityClient,
    Renewal,
    RenewalPolicy,
    csr_for,
    verify_certified,
)
from mesh.proxy.tls import TlsCredentials, TlsStore
from tests.proxy.proxy_support import LOOPBACK, Mesh, identity
from tests.proxy_runtime.runtime_support import (
    free_port,
    identity_channel,
    identity_service,
    token_file,
    wait_until,
)

WEB = identity("web")


class FixedRandom(random.Random):
    """``random()`` always answers ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


# --- the schedule, sans I/O -------------------------------------------------------------


@pytest.mark.parametrize(
    ("jitter_draw", "renew_after"),
    [(0.0, 70.0), (1.0, 63.0), (0.5, 66.5)],
)
def test_renewal_at_seventy_percent_of_the_time_left_minus_jitter(
    jitter_draw: float, renew_after: float
) -> None:
    renewal = Renewal(RenewalPolicy(), FixedRandom(jitter_draw))
    assert renewal.succeeded(1000.0, 1100.0) == pytest.approx(1000.0 + renew_after)


def test_renewal_never_comes_sooner_than_the_minimum_wait() -> None:
    renewal = Renewal(RenewalPolicy(min_wait=1.0), FixedRandom(0.0))
    assert renewal.succeeded(1000.0, 1000.5) == 1001.0
    assert renewal.succeeded(1000.0, 900.0) == 1001.0


def test_failures_back_off_exponentially_and_a_success_resets_them() -> None:
    policy = RenewalPolicy(retry=BackoffSettings(initial=1.0, maximum=8.0, jitter=0.0))
    renewal = Renewal(policy, FixedRandom(0.0))
    delays = [renewal.failed(100.0) - 100.0 for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert renewal.failures == 6
    renewal.succeeded(100.0, 200.0)
    assert renewal.failures == 0
    assert renewal.failed(100.0) == 101.0


def test_backoff_jitter_stays_within_its_share() -> None:
    backoff = Backoff(BackoffSettings(initial=1.0, maximum=1.0, jitter=0.5), random.Random(7))
    delays = [backoff.next() for _ in range(200)]
    assert min(delays) >= 0.5
    assert max(delays) <= 1.0
    assert max(delays) - min(delays) > 0.3


@pytest.mark.parametrize(
    "settings",
    [
        {"initial": 0.0},
        {"initial": 2.0, "maximum": 1.0},
        {"factor": 0.5},
        {"jitter": 1.5},
    ],
)
def test_backoff_settings_are_checked(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        BackoffSettings(**settings)


# --- verifying what the service answers -----------------------------------------------


def signed(mesh: Mesh, name: str, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, list[bytes]]:
    assert mesh.issuer is not None
    csr = x509.load_der_x509_csr(csr_for(name, key))
    issued = issue(mesh.issuer, Accepted(parse(name), csr), now=datetime.now(UTC))
    return issued.leaf.public_bytes(Encoding.DER), [
        c.public_bytes(Encoding.DER) for c in issued.chain
    ]


def test_csr_names_only_the_identity() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.load_der_x509_csr(csr_for(WEB, key))
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [WEB]
    assert csr.is_signature_valid
    assert csr.public_key() == key.public_key()


def test_a_verified_answer_makes_credentials(mesh: Mesh) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf, chain = signed(mesh, WEB, key)
    certified = verify_certified(
        leaf,
        chain,
        identity=WEB,
        key=key,
        trust_anchors_pem=mesh.anchors_pem(),
        now=datetime.now(UTC),
    )
    assert certified.credentials.identity == WEB
    assert TlsStore(certified.credentials).ready
    assert certified.valid_until > datetime.now(UTC)


def test_answers_that_do_not_verify_are_refused(mesh: Mesh) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf, chain = signed(mesh, WEB, key)
    now = datetime.now(UTC)
    common = {"trust_anchors_pem": mesh.anchors_pem(), "now": now}
    with pytest.raises(CertifyError, match="not for this proxy's key"):
        verify_certified(
            leaf, chain, identity=WEB, key=ec.generate_private_key(ec.SECP256R1()), **common
        )
    with pytest.raises(CertifyError, match="names"):
        verify_certified(leaf, chain, identity=identity("db"), key=key, **common)
    with pytest.raises(CertifyError, match="does not verify"):
        verify_certified(
            leaf,
            chain,
            identity=WEB,
            key=key,
            trust_anchors_pem=Mesh().anchors_pem(),
            now=now,
        )
    with pytest.raises(CertifyError, match="expired"):
        verify_certified(
            leaf,
            chain,
            identity=WEB,
            key=key,
            trust_anchors_pem=mesh.anchors_pem(),
            now=now + timedelta(days=2),
        )
    with pytest.raises(CertifyError, match="unreadable"):
        verify_certified(b"junk", chain, identity=WEB, key=key, **common)


# --- against the real identity service ------------------------------------------------


def settings(mesh: Mesh, token: Path, port: int, name: str = WEB) -> IdentitySettings:
    return IdentitySettings(
        local_name=name,
        trust_anchors_pem=mesh.anchors_pem(),
        token_file=PurePosixPath(token),
        svc=ServiceAddr(LOOPBACK, port),
    )


FAST = RenewalPolicy(retry=BackoffSettings(initial=0.05, maximum=0.2), call_timeout=5.0)


async def test_the_proxy_gets_a_certificate_for_its_identity(mesh: Mesh, tmp_path: Path) -> None:
    """CONF-30: the certificate names the workload identity and chains to the anchor."""
    installed: list[TlsCredentials] = []
    async with (
        identity_service(mesh) as port,
        identity_channel(mesh, port) as ch,
    ):
        client = IdentityClient(
            settings(mesh, token_file(tmp_path, "web"), port), ch, on_certified=installed.append
        )
        next_at = await client.attempt()
    assert client.certified.is_set()
    assert [c.identity for c in installed] == [WEB]
    leaf = x509.load_pem_x509_certificates(installed[0].certificate_chain_pem)[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [WEB]
    assert WEB.endswith(".cluster.local")
    assert leaf.public_key() == client.key.public_key()
    lifetime = (leaf.not_valid_after_utc - datetime.now(UTC)).total_seconds()
    assert 0.6 * lifetime < next_at - datetime.now(UTC).timestamp() < 0.71 * lifetime


async def test_a_token_of_another_account_is_refused_and_retried(
    mesh: Mesh, tmp_path: Path
) -> None:
    """CONF-31: the service refuses; the proxy stays without a certificate and keeps trying."""
    installed: list[TlsCredentials] = []
    async with (
        identity_service(mesh) as port,
        identity_channel(mesh, port) as ch,
    ):
        client = IdentityClient(
            settings(mesh, token_file(tmp_path, "db"), port),
            ch,
            on_certified=installed.append,
            policy=FAST,
        )
        first = await client.attempt()
        second = await client.attempt()
    assert installed == []
    assert not client.certified.is_set()
    assert client.last_error is not None
    assert "PERMISSION_DENIED" in client.last_error
    now = datetime.now(UTC).timestamp()
    assert first - now < 0.2
    assert second - now < 0.3


async def test_an_unreadable_token_is_reported(mesh: Mesh, tmp_path: Path) -> None:
    async with identity_channel(mesh, free_port()) as ch:
        client = IdentityClient(
            settings(mesh, tmp_path / "missing", 1), ch, on_certified=lambda c: None
        )
        with pytest.raises(CertifyError, match="cannot read the token"):
            await client.certify()


async def test_the_client_waits_for_the_service_then_renews(mesh: Mesh, tmp_path: Path) -> None:
    """Started before the identity service, the client retries until it answers, then renews
    at ~70 % of each (short) leaf's life, with the same key and a fresh token read each time."""
    port = free_port()
    installed: list[TlsCredentials] = []
    reads: list[Path] = []
    token = token_file(tmp_path, "web")

    def read_token(path: Path) -> bytes:
        reads.append(path)
        return path.read_bytes()

    async with identity_channel(mesh, port) as ch:
        client = IdentityClient(
            settings(mesh, token, port),
            ch,
            on_certified=installed.append,
            policy=RenewalPolicy(
                fraction=0.7,
                min_wait=0.1,
                retry=BackoffSettings(initial=0.05, maximum=0.2),
                call_timeout=2.0,
            ),
            read_token=read_token,
        )
        task = asyncio.create_task(client.run())
        try:
            await wait_until(lambda: len(reads) >= 2)
            assert installed == []
            async with identity_service(mesh, lifetime=timedelta(seconds=1), port=port):
                await wait_until(lambda: len(installed) >= 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    leaves = [x509.load_pem_x509_certificates(c.certificate_chain_pem)[0] for c in installed]
    assert len({leaf.serial_number for leaf in leaves}) == len(leaves)
    assert all(leaf.public_key() == client.key.public_key() for leaf in leaves)
    assert all(path == token for path in reads)


async def test_a_certificate_that_cannot_be_installed_is_retried(
    mesh: Mesh, tmp_path: Path
) -> None:
    """Installing must never end the renewals: a failure is logged and retried like any other."""

    def refuse(credentials: TlsCredentials) -> None:
        raise ValueError("the TLS store refused it")

    async with (
        identity_service(mesh) as port,
        identity_channel(mesh, port) as ch,
    ):
        client = IdentityClient(
            settings(mesh, token_file(tmp_path, "web"), port), ch, on_certified=refuse, policy=FAST
        )
        retry_at = await client.attempt()
    assert not client.certified.is_set()
    assert client.last_error == "the TLS store refused it"
    assert retry_at - datetime.now(UTC).timestamp() < 0.2
