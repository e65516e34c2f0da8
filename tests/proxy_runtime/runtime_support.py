"""Helpers for the proxy runtime tests: control-plane services on loopback, and proxy environments.

The identity service is the real ``IdentityServicer`` with a fake token
reviewer (our own seam). Destination and policy are fakes built on the
generated servicer classes: scripted answers, streams that can be pushed to,
and servers that can be killed and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
from grpc import aio

from mesh.identity import Credentials, TokenReview
from mesh.identity.bootstrap import self_issued
from mesh.identity.channels import ServingCertificate, control_channel
from mesh.identity.issuing import IssuingPolicy
from mesh.identity.service import IdentityServer, IdentityServicer, ServerSettings
from mesh.proto import destination_pb2 as dpb
from mesh.proto import destination_pb2_grpc as dpb_grpc
from mesh.proto import inbound_pb2 as ipb
from mesh.proto import inbound_pb2_grpc as ipb_grpc
from mesh.proxy.runtime import CHANNEL_OPTIONS
from tests.proxy.proxy_support import LOOPBACK, TRUST_DOMAIN, Mesh

WAIT = 10.0
"""How long a test waits for something asynchronous to happen (seconds)."""


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``condition`` until true; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def free_port() -> int:
    """A loopback port free right now (for servers that must be restarted on the same port)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class StaticIssuer:
    credentials: Credentials

    def current(self, now: datetime) -> Credentials:
        return self.credentials


@dataclass
class FakeReviewer:
    """Tokens are ``token-<sa>``; each belongs to ``system:serviceaccount:<ns>:<sa>``."""

    namespace: str = "demo"
    asked: list[str] = field(default_factory=list)

    async def review(self, token: str, audience: str) -> TokenReview:
        self.asked.append(token)
        if not token.startswith("token-"):
            return TokenReview(False)
        sa = token.removeprefix("token-")
        return TokenReview(True, f"system:serviceaccount:{self.namespace}:{sa}", (audience,))


IDENTITY_SVC_NAME = f"linkerd-identity.linkerd.serviceaccount.identity.linkerd.{TRUST_DOMAIN}"
DESTINATION_SVC_NAME = f"linkerd-destination.linkerd.serviceaccount.identity.linkerd.{TRUST_DOMAIN}"


def serving(
    mesh: Mesh, name: str, *, require_client_auth: bool, trust: Mesh | None = None
) -> ServingCertificate:
    """Serving credentials for ``name`` signed by ``mesh``'s issuer, trusting ``trust``'s anchor."""
    assert mesh.issuer is not None
    issued = self_issued(mesh.issuer, name, now=datetime.now(UTC))
    certificate = ServingCertificate(
        (trust or mesh).anchors_pem(), require_client_auth=require_client_auth
    )
    certificate.install(issued.key_pem, issued.chain_pem)
    return certificate


def control_plane_tls(mesh: Mesh) -> ServingCertificate:
    """What destination and policy serve with: mTLS as ``DESTINATION_SVC_NAME``."""
    return serving(mesh, DESTINATION_SVC_NAME, require_client_auth=True)


def identity_channel(mesh: Mesh, port: int, name: str = IDENTITY_SVC_NAME) -> aio.Channel:
    """A proxy's channel to an identity service on loopback: TLS checking ``name``."""
    return control_channel(f"{LOOPBACK}:{port}", name, mesh.anchors_pem(), options=CHANNEL_OPTIONS)


@contextlib.asynccontextmanager
async def identity_service(
    mesh: Mesh,
    *,
    lifetime: timedelta = timedelta(hours=1),
    port: int = 0,
    name: str = IDENTITY_SVC_NAME,
    signer: Mesh | None = None,
) -> AsyncIterator[int]:
    """The real identity service on loopback, serving TLS as ``name``; yields its port.

    It certifies with ``mesh``'s issuer; its own certificate is signed by
    ``signer``'s (default: the same), so a test can stand up an impostor.
    """
    assert mesh.issuer is not None
    servicer = IdentityServicer(
        IssuingPolicy(trust_domain=TRUST_DOMAIN),
        StaticIssuer(mesh.issuer),
        FakeReviewer(),
        lifetime=lifetime,
    )
    server = IdentityServer(servicer, ServerSettings(shutdown_grace=0))
    tls = serving(signer or mesh, name, require_client_auth=False)
    bound = await server.start(f"{LOOPBACK}:{port}", tls.credentials())
    try:
        yield bound
    finally:
        await server.stop()


class FakeDestination(dpb_grpc.DestinationServicer):
    """Scripted discovery: a profile per path, a first ``Update`` per authority, then pushes.

    Unknown paths are refused with INVALID_ARGUMENT, as the real service refuses
    names outside its cluster.
    """

    def __init__(self) -> None:
        self.profiles: dict[str, dpb.DestinationProfile] = {}
        self.first: dict[str, dpb.Update] = {}
        self.calls: list[tuple[str, str]] = []
        self.contexts: list[str] = []
        self._streams: dict[str, list[asyncio.Queue[dpb.Update]]] = defaultdict(list)

    def open_streams(self, authority: str) -> int:
        return len(self._streams[authority])

    def push(self, authority: str, update: dpb.Update) -> None:
        for queue in self._streams[authority]:
            queue.put_nowait(update)

    async def Get(self, request: dpb.GetDestination, context: object) -> AsyncIterator[dpb.Update]:
        self.calls.append(("Get", request.path))
        self.contexts.append(request.context_token)
        first = self.first.get(request.path)
        if first is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown {request.path}")  # type: ignore[attr-defined]
            return
        queue: asyncio.Queue[dpb.Update] = asyncio.Queue()
        self._streams[request.path].append(queue)
        try:
            yield first
            while True:
                yield await queue.get()
        finally:
            self._streams[request.path].remove(queue)

    async def GetProfile(
        self, request: dpb.GetDestination, context: object
    ) -> AsyncIterator[dpb.DestinationProfile]:
        self.calls.append(("GetProfile", request.path))
        self.contexts.append(request.context_token)
        profile = self.profiles.get(request.path)
        if profile is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown {request.path}")  # type: ignore[attr-defined]
            return
        yield profile
        await asyncio.Event().wait()


class FakePolicy(ipb_grpc.InboundServerPoliciesServicer):
    """Scripted inbound policy: the current server per port, pushed to open watches on change."""

    def __init__(self) -> None:
        self.servers: dict[int, ipb.Server] = {}
        self.watched: list[tuple[str, int]] = []
        self._streams: dict[int, list[asyncio.Queue[ipb.Server]]] = defaultdict(list)

    def set(self, port: int, server: ipb.Server) -> None:
        self.servers[port] = server
        for queue in self._streams[port]:
            queue.put_nowait(server)

    async def WatchPort(self, request: ipb.Workload, context: object) -> AsyncIterator[ipb.Server]:
        self.watched.append((request.workload, request.port))
        queue: asyncio.Queue[ipb.Server] = asyncio.Queue()
        self._streams[request.port].append(queue)
        try:
            if request.port in self.servers:
                yield self.servers[request.port]
            while True:
                yield await queue.get()
        finally:
            self._streams[request.port].remove(queue)


class GrpcServer:
    """A gRPC server on a fixed loopback port that can be stopped (killed) and started again."""

    def __init__(
        self, *register: Callable[[aio.Server], None], tls: ServingCertificate | None = None
    ) -> None:
        self._register = register
        self._tls = tls
        self.port = free_port()
        self._server: aio.Server | None = None

    async def start(self) -> None:
        server = aio.server()
        for add in self._register:
            add(server)
        address = f"{LOOPBACK}:{self.port}"
        if self._tls is not None:
            port = server.add_secure_port(address, self._tls.credentials())
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen on {LOOPBACK}:{self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def destination_server(fake: FakeDestination, tls: ServingCertificate | None = None) -> GrpcServer:
    """The fake on loopback: plaintext, or (m)TLS with ``tls``."""
    return GrpcServer(lambda s: dpb_grpc.add_DestinationServicer_to_server(fake, s), tls=tls)


def policy_server(fake: FakePolicy, tls: ServingCertificate | None = None) -> GrpcServer:
    """The fake on loopback: plaintext, or (m)TLS with ``tls``."""
    return GrpcServer(
        lambda s: ipb_grpc.add_InboundServerPoliciesServicer_to_server(fake, s), tls=tls
    )


def weighted(
    port: int, identity: str | None = None, ip: str = LOOPBACK, **labels: str
) -> dpb.WeightedAddr:
    addr = dpb.WeightedAddr(
        addr=dpb.TcpAddress(ip=ip, port=port), weight=10000, metric_labels=labels
    )
    if identity:
        addr.tls_identity.dns_name = identity
    return addr


def add(*addrs: dpb.WeightedAddr, **labels: str) -> dpb.Update:
    return dpb.Update(add=dpb.WeightedAddrSet(addrs=addrs, metric_labels=labels))


def token_file(tmp_path: Path, sa: str) -> Path:
    path = tmp_path / f"{sa}.token"
    path.write_text(f"token-{sa}\n")
    return path


def proxy_env(
    mesh: Mesh,
    name: str,
    *,
    token: Path,
    identity_port: int,
    destination_port: int | None = None,
    policy_port: int | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment the injector would give a proxy of service account ``name`` in ``demo``."""
    env = {
        "LINKERD2_PROXY_LOG": "warn,linkerd=info",
        "LINKERD2_PROXY_LOG_FORMAT": "plain",
        "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY": "all-unauthenticated",
        "LINKERD2_PROXY_IDENTITY_LOCAL_NAME": (
            f"{name}.demo.serviceaccount.identity.linkerd.{TRUST_DOMAIN}"
        ),
        "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS": mesh.anchors_pem().decode(),
        "LINKERD2_PROXY_IDENTITY_TOKEN_FILE": str(token),
        "LINKERD2_PROXY_IDENTITY_SVC_ADDR": f"{LOOPBACK}:{identity_port}",
        "LINKERD2_PROXY_IDENTITY_SVC_NAME": IDENTITY_SVC_NAME,
    }
    if destination_port is not None:
        env["LINKERD2_PROXY_DESTINATION_SVC_ADDR"] = f"{LOOPBACK}:{destination_port}"
        env["LINKERD2_PROXY_DESTINATION_SVC_NAME"] = DESTINATION_SVC_NAME
        env["LINKERD2_PROXY_DESTINATION_CONTEXT"] = '{"ns":"demo", "nodeName":"n", "pod":"p"}'
        env["LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES"] = "svc.cluster.local."
    if policy_port is not None:
        env["LINKERD2_PROXY_POLICY_SVC_ADDR"] = f"{LOOPBACK}:{policy_port}"
        env["LINKERD2_PROXY_POLICY_SVC_NAME"] = DESTINATION_SVC_NAME
        env["LINKERD2_PROXY_POLICY_WORKLOAD"] = f'{{"ns":"demo", "pod":"{name}-0"}}'
    env.update(extra)
    return env


async def admin_get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=WAIT) as http:
        return await http.get(f"http://{LOOPBACK}:{port}{path}")


def series(text: str, name: str, **want: str) -> float:
    """The sum of samples of ``name`` whose labels include ``want``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels_part, value = line[len(name) :].rsplit(" ", 1)
        if all(f'{k}="{v}"' in labels_part for k, v in want.items()):
            total += float(value)
    return total


def env_of(mapping: Mapping[str, str], **changes: str | None) -> dict[str, str]:
    """``mapping`` with ``changes`` applied (``None`` removes a variable)."""
    env = dict(mapping)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env
