"""How each control-plane service gets the certificate it serves with.

Rules (SEC-3; the design is documented in ``mesh/install/controlplane.py``):
- Every service serves under its service account's identity,
  ``<sa>.<ns>.serviceaccount.identity.<ns>.<trust-domain>``, the name proxies
  are told to expect (``LINKERD2_PROXY_*_SVC_NAME``).
- The identity service cannot ask itself over the network before it serves, so,
  as Linkerd's identity controller does, it signs its own leaf with the issuer
  it certifies workloads with (``SelfCertifier``), and renews it the same way.
- Destination and policy get theirs like any proxy: their pod's projected token
  (audience ``identity.l5d.io``) and a CSR, sent to the identity service over
  TLS that checks the identity service's name against the trust anchors
  (``certify_from_identity``). A service does not serve until it has one.
- Renewal follows the proxy's ``RenewalPolicy`` (70 % of the leaf's life).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from mesh.identity.certs import Credentials
from mesh.identity.channels import ServingCertificate, control_channel
from mesh.identity.issuing import DEFAULT_LEAF_LIFETIME, Accepted, issue
from mesh.identity.names import parse
from mesh.identity.pem import certificates_pem
from mesh.proxy.envconfig import IdentitySettings, ServiceAddr, parse_service_addr
from mesh.proxy.identity_client import IdentityClient, Renewal, RenewalPolicy, csr_for

__all__ = [
    "ControlPlaneIdentity",
    "SelfCertifier",
    "add_identity_arguments",
    "certify_from_identity",
    "identity_settings",
    "self_issued",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelfIssued:
    key_pem: bytes
    chain_pem: bytes
    valid_until: datetime


def self_issued(
    issuer: Credentials, name: str, *, now: datetime, lifetime: timedelta = DEFAULT_LEAF_LIFETIME
) -> SelfIssued:
    """A fresh key and a leaf naming ``name`` signed by ``issuer`` (chain: leaf, issuer, …).

    ``ValueError`` if ``name`` is not a workload identity or the issuer cannot sign at ``now``.
    """
    identity = parse(name)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.load_der_x509_csr(csr_for(name, key))
    issued = issue(issuer, Accepted(identity, csr), now=now, lifetime=lifetime)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SelfIssued(key_pem, certificates_pem(issued.leaf, *issued.chain), issued.valid_until)


class SelfCertifier:
    """The identity service's own serving certificate, signed by its issuer and renewed."""

    def __init__(
        self,
        name: str,
        issuer: Callable[[datetime], Credentials],
        serving: ServingCertificate,
        *,
        lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
        policy: RenewalPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        parse(name)
        self.name = name
        self._issuer = issuer
        self.serving = serving
        self._lifetime = lifetime
        self._clock = clock
        self._renewal = Renewal(policy or RenewalPolicy(), rng or random.Random())

    def renew(self) -> float:
        """Issue and install a new certificate; return when (POSIX seconds) to renew next."""
        now = self._clock()
        try:
            issued = self_issued(self._issuer(now), self.name, now=now, lifetime=self._lifetime)
        except (ValueError, OSError) as e:
            log.error("cannot renew the serving certificate of %s: %s", self.name, e)
            return self._renewal.failed(now.timestamp())
        self.serving.install(issued.key_pem, issued.chain_pem)
        log.info("serving as %s until %s", self.name, issued.valid_until.isoformat())
        return self._renewal.succeeded(now.timestamp(), issued.valid_until.timestamp())

    async def run(self, next_at: float) -> None:
        """Renew at ``next_at`` and after, until cancelled."""
        while True:
            await asyncio.sleep(max(0.0, next_at - self._clock().timestamp()))
            next_at = self.renew()


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags a service certified by the identity service takes (all required)."""
    group = parser.add_argument_group("identity (TLS for proxies, SEC-3)")
    group.add_argument("--identity-name", required=True, help="this service's own identity")
    group.add_argument("--trust-anchors", type=Path, required=True, help="trust anchors PEM")
    group.add_argument("--identity-token-file", type=Path, required=True)
    group.add_argument(
        "--identity-addr", required=True, help="the identity service, host:port (DNS or IP)"
    )
    group.add_argument("--identity-svc-name", required=True, help="the identity service's identity")


@dataclass
class ControlPlaneIdentity:
    """A service's certificate from the identity service, kept renewed until ``close``."""

    serving: ServingCertificate
    client: IdentityClient
    task: asyncio.Task[None]
    channel: aio.Channel

    async def close(self) -> None:
        """Stop renewing and close the channel to the identity service."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.channel.close(None)


def identity_settings(args: argparse.Namespace) -> IdentitySettings:
    """The ``IdentitySettings`` the flags of ``add_identity_arguments`` describe.

    ``SystemExit`` naming the flag for an unreadable file or a malformed value.
    """
    try:
        anchors = Path(args.trust_anchors).read_bytes()
    except OSError as e:
        raise SystemExit(f"--trust-anchors {args.trust_anchors}: {e.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in anchors:
        raise SystemExit(f"--trust-anchors {args.trust_anchors}: no PEM certificate")
    checks: list[tuple[str, Callable[[], object]]] = [
        ("--identity-addr", lambda: parse_service_addr(args.identity_addr)),
        ("--identity-name", lambda: parse(args.identity_name)),
        ("--identity-svc-name", lambda: parse(args.identity_svc_name)),
    ]
    for flag, check in checks:
        try:
            check()
        except ValueError as e:
            raise SystemExit(f"{flag}: {e}") from None
    svc: ServiceAddr = parse_service_addr(args.identity_addr)
    return IdentitySettings(
        local_name=args.identity_name,
        trust_anchors_pem=anchors,
        token_file=PurePosixPath(str(args.identity_token_file)),
        svc=svc,
        svc_name=args.identity_svc_name,
    )


async def certify_from_identity(
    settings: IdentitySettings,
    *,
    require_client_auth: bool = True,
    policy: RenewalPolicy | None = None,
) -> ControlPlaneIdentity:
    """Ask the identity service for a certificate (retrying), then keep renewing it.

    Returns once the first certificate is installed in the returned ``serving``.
    """
    anchors = settings.trust_anchors_pem
    serving = ServingCertificate(anchors, require_client_auth=require_client_auth)
    channel = control_channel(
        settings.svc.grpc_target, settings.svc_name, settings.trust_anchors_pem
    )
    client = IdentityClient(
        settings,
        channel,
        on_certified=lambda c: serving.install(c.key_pem, c.certificate_chain_pem),
        policy=policy,
    )
    task = asyncio.get_running_loop().create_task(client.run(), name="certify")
    try:
        await client.certified.wait()
    except BaseException:
        task.cancel()
        await channel.close(None)
        raise
    return ControlPlaneIdentity(serving, client, task, channel)
