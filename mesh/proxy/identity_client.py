"""The proxy's certificate: asked of the identity service at start, renewed before it expires.

Sans-I/O parts: ``csr_for`` (the request), ``verify_certified`` (is the answer
a leaf for our key and identity that chains to the trust anchors?) and
``Renewal`` (when to ask next). ``IdentityClient`` does the I/O: it reads the
projected token afresh at every attempt, calls ``Identity.Certify`` and hands
each verified certificate to ``on_certified`` (the proxy installs it in its TLS
store, so open connections keep the certificate they started with).

Rules, following Linkerd:
- One ECDSA P-256 key per process, generated at start and kept in memory; its
  CSR's only SAN is the local identity.
- Renew at ``fraction`` (70 %) of the time left on the leaf when it arrived,
  minus up to ``jitter`` of that, so a fleet started together spreads out.
- A failed attempt (the service unreachable, a refusal, an answer that does
  not verify) is retried with capped exponential back-off; the current
  certificate stays in use meanwhile.
- The identity service is reached over TLS (the channel comes from the
  runtime): its certificate must chain to the trust anchors and name
  ``LINKERD2_PROXY_IDENTITY_SVC_NAME``, so the token is sent to no one else
  and never in clear (SEC-3).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from mesh.identity.pem import certificates_pem
from mesh.identity.trust import ChainError, verify_peer
from mesh.proto import identity_pb2 as pb
from mesh.proto import identity_pb2_grpc as pb_grpc
from mesh.proxy.backoff import Backoff, BackoffSettings
from mesh.proxy.envconfig import IdentitySettings
from mesh.proxy.tls import TlsCredentials

__all__ = [
    "Certified",
    "CertifyError",
    "IdentityClient",
    "Renewal",
    "RenewalPolicy",
    "csr_for",
    "verify_certified",
]

log = logging.getLogger(__name__)


class CertifyError(Exception):
    """An attempt to get a certificate failed; the message says why."""


@dataclass(frozen=True)
class RenewalPolicy:
    """When certificates are renewed and failures retried (seconds)."""

    fraction: float = 0.7
    """Renew after this fraction of the time the leaf had left when it arrived."""
    jitter: float = 0.1
    """Up to this fraction of that wait is taken off at random."""
    min_wait: float = 1.0
    """Never renew sooner than this after a success (a leaf that is nearly expired)."""
    retry: BackoffSettings = field(
        default_factory=lambda: BackoffSettings(initial=1.0, maximum=60.0)
    )
    call_timeout: float = 10.0
    """How long one ``Certify`` call may take."""


class Renewal:
    """The renewal schedule, sans I/O: times are seconds on the caller's (wall) clock."""

    def __init__(self, policy: RenewalPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        self._backoff = Backoff(policy.retry, rng)

    def succeeded(self, now: float, valid_until: float) -> float:
        """When to renew a leaf valid until ``valid_until`` that arrived at ``now``."""
        self._backoff.reset()
        p = self.policy
        wait = max(0.0, valid_until - now) * p.fraction
        wait -= wait * p.jitter * self._rng.random()
        return now + max(p.min_wait, wait)

    def failed(self, now: float) -> float:
        """When to try again after an attempt at ``now`` failed."""
        return now + self._backoff.next()

    @property
    def failures(self) -> int:
        """Consecutive failed attempts."""
        return self._backoff.failures


def csr_for(identity: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A DER PKCS#10 request for ``identity`` (its single DNS SAN), signed with ``key``."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


@dataclass(frozen=True)
class Certified:
    """A verified workload certificate, ready for the TLS store."""

    credentials: TlsCredentials
    valid_until: datetime


def verify_certified(
    leaf_der: bytes,
    intermediates_der: list[bytes],
    *,
    identity: str,
    key: ec.EllipticCurvePrivateKey,
    trust_anchors_pem: bytes,
    now: datetime,
) -> Certified:
    """The credentials in a ``Certify`` answer, once checked; ``CertifyError`` says what is wrong.

    The leaf must be for ``key``, name exactly ``identity`` and chain through
    the intermediates to one of the anchors at ``now``.
    """
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        chain = [x509.load_der_x509_certificate(der) for der in intermediates_der]
    except ValueError as e:
        raise CertifyError(f"the identity service sent an unreadable certificate: {e}") from None
    if leaf.public_key() != key.public_key():
        raise CertifyError("the certificate is not for this proxy's key")
    anchors = x509.load_pem_x509_certificates(trust_anchors_pem)
    try:
        named = verify_peer([leaf, *chain], anchors, now=now)
    except ChainError as e:
        raise CertifyError(f"the certificate does not verify: {e}") from None
    if named != identity:
        raise CertifyError(f"the certificate names {named!r}, not {identity!r}")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    credentials = TlsCredentials(
        identity, certificates_pem(leaf, *chain), key_pem, trust_anchors_pem
    )
    return Certified(credentials, leaf.not_valid_after_utc)


def _read_token(path: Path) -> bytes:
    return path.read_bytes()


class IdentityClient:
    """Gets and renews the proxy's certificate (see the module docstring)."""

    def __init__(
        self,
        settings: IdentitySettings,
        channel: aio.Channel,
        *,
        on_certified: Callable[[TlsCredentials], None],
        policy: RenewalPolicy | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        read_token: Callable[[Path], bytes] = _read_token,
    ) -> None:
        self.settings = settings
        self.policy = policy or RenewalPolicy()
        self._stub = pb_grpc.IdentityStub(channel)
        self._on_certified = on_certified
        self._clock = clock
        self._renewal = Renewal(self.policy, rng or random.Random())
        self._read_token = read_token
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.certified = asyncio.Event()
        """Set once the first certificate is installed."""
        self.current: Certified | None = None
        self.renewals = 0
        """Certificates installed so far."""
        self.last_error: str | None = None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def certify(self) -> Certified:
        """One attempt: read the token, send a CSR, verify the answer."""
        s = self.settings
        try:
            token = self._read_token(Path(str(s.token_file))).strip()
        except OSError as e:
            raise CertifyError(f"cannot read the token {s.token_file}: {e.strerror}") from None
        if not token:
            raise CertifyError(f"the token file {s.token_file} is empty")
        request = pb.CertifyRequest(
            identity=s.local_name,
            token=token,
            certificate_signing_request=csr_for(s.local_name, self.key),
        )
        try:
            response = await self._stub.Certify(request, timeout=self.policy.call_timeout)
        except aio.AioRpcError as e:
            raise CertifyError(f"Certify at {s.svc}: {e.code().name}: {e.details()}") from None
        return verify_certified(
            response.leaf_certificate,
            list(response.intermediate_certificates),
            identity=s.local_name,
            key=self.key,
            trust_anchors_pem=s.trust_anchors_pem,
            now=self._now(),
        )

    async def attempt(self) -> float:
        """One attempt, installing what it gets; returns when (clock time) to try next."""
        try:
            certified = await self.certify()
            self._on_certified(certified.credentials)
        except Exception as e:  # nothing may end the renewals: log, back off, try again
            self.last_error = str(e)
            retry = self._renewal.failed(self._clock())
            level = logging.INFO if self._renewal.failures == 1 else logging.WARNING
            exc_info = not isinstance(e, CertifyError)
            log.log(
                level, "no certificate for %s: %s", self.settings.local_name, e, exc_info=exc_info
            )
            return retry
        self.current = certified
        self.renewals += 1
        self.last_error = None
        self.certified.set()
        now = self._clock()
        renew_at = self._renewal.succeeded(now, certified.valid_until.timestamp())
        log.info(
            "certified %s until %s; renewing in %.0fs",
            self.settings.local_name,
            certified.valid_until.isoformat(),
            renew_at - now,
        )
        return renew_at

    async def run(self) -> None:
        """Certify, then renew, until cancelled."""
        while True:
            next_at = await self.attempt()
            await asyncio.sleep(max(0.0, next_at - self._clock()))
