"""The identity service over gRPC: certify workloads after reviewing their tokens.

The thin I/O layer around ``mesh.identity.issuing``: it reviews the proxy's
token through an injected ``TokenReviewer`` (a Kubernetes TokenReview with
audience ``identity.l5d.io`` in production), lets ``review`` decide, has
``issue`` sign, and maps refusals to gRPC status codes:

- INVALID_ARGUMENT: an empty field, an identity this issuer does not name, a
  CSR that is unreadable, badly signed, has the wrong key or names another identity;
- UNAUTHENTICATED: a token the API server does not authenticate for the audience;
- PERMISSION_DENIED: a token of another service account than the identity's;
- UNAVAILABLE: the token could not be reviewed; FAILED_PRECONDITION: the issuer cannot sign.

The issuer files (mounted from a Secret) are read again when they change.

It serves TLS only (SEC-3): a leaf for its own service account's identity
(``linkerd-identity.<ns>.serviceaccount.identity.<ns>.<trust-domain>``, what
proxies expect as ``LINKERD2_PROXY_IDENTITY_SVC_NAME``), which it signs itself
with the issuer and renews (``mesh.identity.bootstrap.SelfCertifier``), so the
token in each request never crosses the network in clear. Callers present no
certificate (they have none yet).

``python -m mesh.identity.service --issuer-cert F --issuer-key F
--trust-anchors F --trust-domain T --port 8080``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import click
import grpc
import httpx2
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.authentication_v1 import TokenReview as KubeTokenReview

from mesh.identity.bootstrap import SelfCertifier
from mesh.identity.certs import Credentials, check_issuer, load_credentials
from mesh.identity.channels import ServingCertificate
from mesh.identity.cli import Duration
from mesh.identity.issuing import (
    DEFAULT_LEAF_LIFETIME,
    Check,
    IssuingPolicy,
    Refused,
    TokenReview,
    issue,
    review,
)
from mesh.identity.names import DEFAULT_CONTROL_PLANE_NS, WorkloadIdentity
from mesh.identity.pem import CertError, PemFile
from mesh.proto import identity_pb2 as pb
from mesh.proto import identity_pb2_grpc as pb_grpc
from mesh.serving import grpc_server, stop_signal

__all__ = [
    "DEFAULT_PORT",
    "FileIssuer",
    "IdentityServer",
    "IdentityServicer",
    "KubeTokenReviewer",
    "ReviewError",
    "TokenReviewer",
    "main",
    "status_for",
]

_log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
SERVICE_ACCOUNT = "linkerd-identity"

_STATUS = {
    Check.IDENTITY: grpc.StatusCode.INVALID_ARGUMENT,
    Check.TOKEN_AUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Check.TOKEN_AUDIENCE: grpc.StatusCode.UNAUTHENTICATED,
    Check.TOKEN_SERVICE_ACCOUNT: grpc.StatusCode.PERMISSION_DENIED,
    Check.CSR_READABLE: grpc.StatusCode.INVALID_ARGUMENT,
    Check.CSR_SIGNATURE: grpc.StatusCode.INVALID_ARGUMENT,
    Check.CSR_KEY: grpc.StatusCode.INVALID_ARGUMENT,
    Check.CSR_SAN: grpc.StatusCode.INVALID_ARGUMENT,
}


def status_for(refused: Refused) -> grpc.StatusCode:
    """The gRPC status a refusal is reported with."""
    return _STATUS[refused.check]


class ReviewError(Exception):
    """The token could not be reviewed (the API server failed or was unreachable)."""


class TokenReviewer(Protocol):
    """Asks who a service-account token belongs to: the seam to the Kubernetes API."""

    async def review(self, token: str, audience: str) -> TokenReview:
        """The review of ``token`` for ``audience``; raise ``ReviewError`` if none can be had."""
        ...


class KubeTokenReviewer:
    """A ``TokenReviewer`` that creates ``authentication.k8s.io/v1`` TokenReviews."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def review(self, token: str, audience: str) -> TokenReview:
        request = KubeTokenReview(
            metadata=ObjectMeta(), spec=TokenReviewSpec(token=token, audiences=[audience])
        )
        try:
            result = await self._client.create(request)
        except httpx2.HTTPError as e:
            raise ReviewError(f"TokenReview failed: {e}") from e
        status = result.status
        if status is None:
            raise ReviewError("TokenReview returned no status")
        if status.error:
            _log.info("TokenReview: %s", status.error)
        return TokenReview(
            authenticated=bool(status.authenticated),
            username=(status.user.username or "") if status.user else "",
            audiences=tuple(status.audiences or ()),
        )


Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _read(path: Path) -> PemFile:
    return PemFile(str(path), path.read_bytes())


class FileIssuer:
    """The issuer's credentials from PEM files, read again whenever the files change.

    A change that does not load (a half-written Secret update) keeps the last
    good credentials and is logged.
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self._cert = cert
        self._key = key
        self._stamp: tuple[int, int] | None = None
        self._credentials: Credentials | None = None

    def _mtimes(self) -> tuple[int, int]:
        return (os.stat(self._cert).st_mtime_ns, os.stat(self._key).st_mtime_ns)

    def current(self, now: datetime) -> Credentials:
        """The issuer to sign with at ``now``; raise ``CertError``/``OSError`` if there is none."""
        stamp = self._mtimes()
        if stamp != self._stamp or self._credentials is None:
            try:
                self._credentials = load_credentials(_read(self._cert), _read(self._key), now=now)
            except (CertError, OSError) as e:
                if self._credentials is None:
                    raise
                _log.error("keeping the previous issuer: %s", e)
            else:
                _log.info("loaded issuer from %s", self._cert)
            self._stamp = stamp
        return self._credentials


class IssuerSource(Protocol):
    def current(self, now: datetime) -> Credentials: ...


Context = aio.ServicerContext[pb.CertifyRequest, pb.CertifyResponse]


class IdentityServicer(pb_grpc.IdentityServicer):
    """``isthmus.identity.v1.Identity``: review, then issue."""

    def __init__(
        self,
        policy: IssuingPolicy,
        issuer: IssuerSource,
        reviewer: TokenReviewer,
        *,
        lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
        clock: Clock = _utcnow,
    ) -> None:
        self._policy = policy
        self._issuer = issuer
        self._reviewer = reviewer
        self._lifetime = lifetime
        self._clock = clock

    async def Certify(self, request: pb.CertifyRequest, context: Context) -> pb.CertifyResponse:
        for name, value in (
            ("identity", request.identity),
            ("token", request.token),
            ("certificate_signing_request", request.certificate_signing_request),
        ):
            if not value:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name} is empty")
        try:
            token = request.token.decode("ascii").strip()
        except UnicodeDecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the token is not ASCII")
        try:
            reviewed = await self._reviewer.review(token, self._policy.audience)
        except ReviewError as e:
            _log.warning("cannot certify %s: %s", request.identity, e)
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        decision = review(
            self._policy, request.identity, reviewed, request.certificate_signing_request
        )
        if isinstance(decision, Refused):
            _log.info("refused %s: %s", request.identity, decision)
            await context.abort(status_for(decision), f"refused {request.identity}: {decision}")
        now = self._clock()
        try:
            issued = issue(self._issuer.current(now), decision, now=now, lifetime=self._lifetime)
        except (ValueError, OSError) as e:
            _log.error("cannot certify %s: %s", request.identity, e)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"the issuer cannot sign: {e}")
        valid_until = Timestamp()
        valid_until.FromDatetime(issued.valid_until)
        _log.info("certified %s until %s", decision.identity, issued.valid_until.isoformat())
        return pb.CertifyResponse(
            leaf_certificate=issued.leaf.public_bytes(Encoding.DER),
            intermediate_certificates=[c.public_bytes(Encoding.DER) for c in issued.chain],
            valid_until=valid_until,
        )


@dataclass(frozen=True)
class ServerSettings:
    shutdown_grace: float = 5.0
    """How long in-flight requests get to finish when the server stops, in seconds."""


class IdentityServer:
    """An identity service on a ``grpc.aio`` server."""

    def __init__(self, servicer: IdentityServicer, settings: ServerSettings | None = None) -> None:
        self._servicer = servicer
        self.settings = settings or ServerSettings()
        self._server: aio.Server | None = None

    async def start(
        self,
        address: str = f"0.0.0.0:{DEFAULT_PORT}",
        credentials: grpc.ServerCredentials | None = None,
    ) -> int:
        """Serve on ``address`` (TLS with ``credentials``, else plaintext); return the port."""
        server = grpc_server()
        pb_grpc.add_IdentityServicer_to_server(self._servicer, server)
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server = server
        return port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace)
            self._server = None


def _duration(text: str) -> timedelta:
    try:
        return Duration().convert(text, None, None)
    except click.BadParameter as e:
        raise argparse.ArgumentTypeError(e.message) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mesh.identity.service",
        description="The mesh's identity service: certifies workloads after a TokenReview.",
    )
    parser.add_argument("--issuer-cert", type=Path, required=True, help="issuer certificate PEM")
    parser.add_argument("--issuer-key", type=Path, required=True, help="issuer private key PEM")
    parser.add_argument("--trust-anchors", type=Path, required=True, help="trust anchors PEM")
    parser.add_argument("--trust-domain", required=True)
    parser.add_argument("--control-plane-ns", default=DEFAULT_CONTROL_PLANE_NS)
    parser.add_argument(
        "--service-account",
        default=SERVICE_ACCOUNT,
        help="the service account whose identity the service serves TLS as",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on")
    parser.add_argument(
        "--leaf-lifetime", type=_duration, default=DEFAULT_LEAF_LIFETIME, help="e.g. 24h"
    )
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    parser.add_argument("--log-level", default="INFO")
    return parser


def _check_files(args: argparse.Namespace) -> list[str]:
    try:
        files = [_read(p) for p in (args.trust_anchors, args.issuer_cert, args.issuer_key)]
    except OSError as e:
        return [f"cannot read {e.filename}: {e.strerror}"]
    anchors, cert, key = files
    return [str(p) for p in check_issuer(anchors, cert, key, now=_utcnow())]


async def _serve(args: argparse.Namespace) -> None:
    kube_config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else None
    client = AsyncClient(config=kube_config)
    policy = IssuingPolicy(trust_domain=args.trust_domain, control_plane_ns=args.control_plane_ns)
    issuer = FileIssuer(args.issuer_cert, args.issuer_key)
    servicer = IdentityServicer(
        policy, issuer, KubeTokenReviewer(client), lifetime=args.leaf_lifetime
    )
    name = serving_name(args)
    serving = ServingCertificate(args.trust_anchors.read_bytes(), require_client_auth=False)
    certifier = SelfCertifier(name, issuer.current, serving, lifetime=args.leaf_lifetime)
    renew_at = certifier.renew()
    if not serving.ready:
        raise SystemExit(f"identity: cannot issue a serving certificate for {name}")
    renewing = asyncio.get_running_loop().create_task(certifier.run(renew_at), name="renew")
    server = IdentityServer(servicer)
    port = await server.start(f"{args.address}:{args.port}", serving.credentials())
    _log.info("identity serving TLS on %s:%d as %s", args.address, port, name)
    stopping = stop_signal()
    try:
        await stopping.wait()
    finally:
        renewing.cancel()
        await server.stop()
        with contextlib.suppress(Exception):
            await client.close()


def serving_name(args: argparse.Namespace) -> str:
    """The identity the service serves TLS as (its service account's)."""
    cp_ns = args.control_plane_ns
    return str(WorkloadIdentity(args.service_account, cp_ns, cp_ns, args.trust_domain))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the identity service until SIGTERM; exit 1 if the issuer files are unusable."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    problems = _check_files(args)
    if problems:
        for problem in problems:
            print(f"identity: {problem}", file=sys.stderr)
        raise SystemExit(1)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
