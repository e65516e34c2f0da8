"""SEC-3: the proxy reaches identity, destination and policy only over TLS it has verified.

Real gRPC servers on loopback, real TLS: the identity service serves as
``linkerd-identity…`` with a certificate it signed itself with the issuer;
destination and policy (fakes) serve mTLS as ``linkerd-destination…``. Impostors
hold the right name under another anchor, or another name under the right anchor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc import aio

from mesh.identity.bootstrap import (
    SelfCertifier,
    certify_from_identity,
    identity_settings,
    self_issued,
)
from mesh.identity.channels import ServingCertificate, control_channel, control_channel_options
from mesh.identity.trust import verify_peer
from mesh.proto import destination_pb2 as dpb
from mesh.proto import destination_pb2_grpc as dpb_grpc
from mesh.proxy.envconfig import EnvError, load
from mesh.proxy.identity_client import CertifyError, RenewalPolicy
from mesh.proxy.runtime import KEPT_CHANNEL_GENERATIONS, ProxyRuntime, RuntimeOptions
from tests.proxy.proxy_support import LOOPBACK, TRUST_DOMAIN, Mesh
from tests.proxy_runtime.runtime_support import (
    DESTINATION_SVC_NAME,
    IDENTITY_SVC_NAME,
    WAIT,
    FakeDestination,
    destination_server,
    free_port,
    identity_service,
    proxy_env,
    serving,
    token_file,
    wait_until,
)

SERVICE = "bb.demo.svc.cluster.local:80"
QUIET = 1.0
"""How long a refused proxy is watched for a call that should never reach the impostor."""


def _runtime(env: dict[str, str]) -> ProxyRuntime:
    return ProxyRuntime(load(env), RuntimeOptions())


def _env(mesh: Mesh, tmp_path: Path, identity_port: int, **ports: int) -> dict[str, str]:
    token = token_file(tmp_path, "web")
    return proxy_env(mesh, "web", token=token, identity_port=identity_port, **ports)  # type: ignore[arg-type]


async def test_the_identity_service_serves_a_certificate_it_signed_for_its_own_name(
    mesh: Mesh,
) -> None:
    async with identity_service(mesh) as port:
        pem = await asyncio.to_thread(
            _server_certificate_pem, port, IDENTITY_SVC_NAME, mesh.anchors_pem()
        )
    leaf = x509.load_pem_x509_certificates(pem)[0]
    assert mesh.issuer is not None
    chain = [leaf, mesh.issuer.certificate]
    assert verify_peer(chain, [mesh.anchor.certificate], now=datetime.now(UTC)) == IDENTITY_SVC_NAME


def _server_certificate_pem(port: int, name: str, anchors: bytes) -> bytes:
    """The leaf a TLS server on loopback presents (verified under ``anchors``, named ``name``)."""
    import socket
    import ssl

    context = ssl.create_default_context(cadata=anchors.decode())
    with (
        socket.create_connection((LOOPBACK, port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der).encode()


async def test_a_proxy_is_certified_over_tls(mesh: Mesh, tmp_path: Path) -> None:
    async with identity_service(mesh) as port:
        runtime = _runtime(
            proxy_env(mesh, "web", token=token_file(tmp_path, "web"), identity_port=port)
        )
        try:
            assert runtime.identity is not None
            certified = await runtime.identity.certify()
        finally:
            await runtime.stop()
    assert certified.credentials.identity.startswith("web.demo.serviceaccount.identity.")


@pytest.mark.parametrize(
    ("impostor", "name"),
    [
        pytest.param("other-anchor", IDENTITY_SVC_NAME, id="right-name-other-anchor"),
        pytest.param("same-anchor", DESTINATION_SVC_NAME, id="other-name-same-anchor"),
    ],
)
async def test_a_proxy_refuses_an_identity_service_it_cannot_verify(
    mesh: Mesh, tmp_path: Path, impostor: str, name: str
) -> None:
    """The handshake fails before any request (with the token) is written."""
    signer = Mesh() if impostor == "other-anchor" else mesh
    async with identity_service(mesh, name=name, signer=signer) as port:
        runtime = _runtime(
            proxy_env(mesh, "web", token=token_file(tmp_path, "web"), identity_port=port)
        )
        try:
            assert runtime.identity is not None
            with pytest.raises(CertifyError, match="UNAVAILABLE"):
                await runtime.identity.certify()
        finally:
            await runtime.stop()


async def test_a_plaintext_identity_service_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    from mesh.identity.issuing import IssuingPolicy
    from mesh.identity.service import IdentityServer, IdentityServicer, ServerSettings
    from tests.proxy_runtime.runtime_support import FakeReviewer, StaticIssuer

    assert mesh.issuer is not None
    reviewer = FakeReviewer()
    servicer = IdentityServicer(
        IssuingPolicy(trust_domain=TRUST_DOMAIN), StaticIssuer(mesh.issuer), reviewer
    )
    server = IdentityServer(servicer, ServerSettings(shutdown_grace=0))
    port = await server.start(f"{LOOPBACK}:0")
    try:
        runtime = _runtime(
            proxy_env(mesh, "web", token=token_file(tmp_path, "web"), identity_port=port)
        )
        try:
            assert runtime.identity is not None
            with pytest.raises(CertifyError):
                await runtime.identity.certify()
        finally:
            await runtime.stop()
    finally:
        await server.stop()
    assert reviewer.asked == [], "a token reached a plaintext identity service"


async def _first_call(runtime: ProxyRuntime) -> None:
    assert runtime.destination is not None
    async with contextlib.aclosing(runtime.destination.resolve(SERVICE)) as updates:
        await anext(updates)


@pytest.mark.parametrize("trusted", [True, False], ids=["verified", "other-anchor"])
async def test_destination_is_called_only_when_it_proves_its_name(
    mesh: Mesh, tmp_path: Path, trusted: bool
) -> None:
    """With mTLS the proxy's certificate goes to a destination signed under its anchor only."""
    fake = FakeDestination()
    fake.profiles[SERVICE] = dpb.DestinationProfile(
        fully_qualified_name="bb.demo.svc.cluster.local"
    )
    signer = mesh if trusted else Mesh()
    tls = serving(signer, DESTINATION_SVC_NAME, require_client_auth=True, trust=mesh)
    async with identity_service(mesh) as port, destination_server(fake, tls) as dst:
        env = proxy_env(
            mesh,
            "web",
            token=token_file(tmp_path, "web"),
            identity_port=port,
            destination_port=dst.port,
        )
        async with _runtime(env) as runtime:
            task = asyncio.get_running_loop().create_task(_first_call(runtime))
            try:
                if trusted:
                    await wait_until(lambda: bool(fake.calls), timeout=3 * WAIT)
                else:
                    await asyncio.sleep(QUIET)
                    assert fake.calls == [], (
                        f"the proxy called an unverified destination: {fake.calls}"
                    )
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def test_destination_refuses_a_caller_without_a_certificate(mesh: Mesh) -> None:
    fake = FakeDestination()
    fake.profiles[SERVICE] = dpb.DestinationProfile(fully_qualified_name="bb")
    tls = serving(mesh, DESTINATION_SVC_NAME, require_client_auth=True)
    async with destination_server(fake, tls) as dst:
        channel = control_channel(
            f"{LOOPBACK}:{dst.port}", DESTINATION_SVC_NAME, mesh.anchors_pem()
        )
        async with channel:
            call = dpb_grpc.DestinationStub(channel).GetProfile(
                dpb.GetDestination(path=SERVICE), timeout=WAIT
            )
            with pytest.raises(aio.AioRpcError) as refused:
                await anext(aiter(call))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert fake.calls == []


async def test_destination_serves_a_caller_with_a_workload_certificate(mesh: Mesh) -> None:
    fake = FakeDestination()
    fake.profiles[SERVICE] = dpb.DestinationProfile(fully_qualified_name="bb")
    tls = serving(mesh, DESTINATION_SVC_NAME, require_client_auth=True)
    client = mesh.credentials(f"web.demo.serviceaccount.identity.linkerd.{TRUST_DOMAIN}")
    async with destination_server(fake, tls) as dst:
        channel = control_channel(
            f"{LOOPBACK}:{dst.port}",
            DESTINATION_SVC_NAME,
            mesh.anchors_pem(),
            client_chain_pem=client.certificate_chain_pem,
            client_key_pem=client.key_pem,
        )
        async with channel:
            call = dpb_grpc.DestinationStub(channel).GetProfile(
                dpb.GetDestination(path=SERVICE), timeout=WAIT
            )
            first = await anext(aiter(call))
            call.cancel()
    assert first.fully_qualified_name == "bb"


async def test_a_renewed_serving_certificate_is_used_for_new_handshakes(mesh: Mesh) -> None:
    tls = serving(mesh, DESTINATION_SVC_NAME, require_client_auth=False)
    fake = FakeDestination()
    async with destination_server(fake, tls) as dst:
        first = await asyncio.to_thread(
            _server_certificate_pem, dst.port, DESTINATION_SVC_NAME, mesh.anchors_pem()
        )
        assert mesh.issuer is not None
        renewed = self_issued(mesh.issuer, DESTINATION_SVC_NAME, now=datetime.now(UTC))
        tls.install(renewed.key_pem, renewed.chain_pem)
        second = await asyncio.to_thread(
            _server_certificate_pem, dst.port, DESTINATION_SVC_NAME, mesh.anchors_pem()
        )
    leaf = x509.load_pem_x509_certificates
    assert leaf(first)[0].serial_number != leaf(second)[0].serial_number
    assert leaf(second)[0].serial_number == leaf(renewed.chain_pem)[0].serial_number


def test_the_self_certifier_renews_before_expiry(mesh: Mesh) -> None:
    assert mesh.issuer is not None
    issuer = mesh.issuer
    now = datetime.now(UTC) + timedelta(minutes=1)
    tls = ServingCertificate(mesh.anchors_pem(), require_client_auth=False)
    certifier = SelfCertifier(
        IDENTITY_SVC_NAME,
        lambda at: issuer,
        tls,
        lifetime=timedelta(hours=10),
        policy=RenewalPolicy(jitter=0.0),
        clock=lambda: now,
    )
    renew_at = certifier.renew()
    assert tls.ready
    assert tls.installed == 1
    assert renew_at == pytest.approx(now.timestamp() + 7 * 3600, abs=2)


def test_the_self_certifier_keeps_its_certificate_when_the_issuer_fails(mesh: Mesh) -> None:
    def broken(at: datetime) -> object:
        raise OSError("issuer files unreadable")

    tls = ServingCertificate(mesh.anchors_pem(), require_client_auth=False)
    certifier = SelfCertifier(IDENTITY_SVC_NAME, broken, tls)  # type: ignore[arg-type]
    now = datetime.now(UTC).timestamp()
    retry = certifier.renew()
    assert not tls.ready
    assert now < retry <= now + 5


def test_self_issued_refuses_a_name_that_is_not_an_identity(mesh: Mesh) -> None:
    assert mesh.issuer is not None
    with pytest.raises(ValueError, match="not a workload identity"):
        self_issued(mesh.issuer, "identity.linkerd.cluster.local", now=datetime.now(UTC))


def test_serving_credentials_need_a_certificate_first(mesh: Mesh) -> None:
    tls = ServingCertificate(mesh.anchors_pem(), require_client_auth=True)
    with pytest.raises(RuntimeError, match="no serving certificate"):
        tls.credentials()
    with pytest.raises(ValueError, match="PEM"):
        tls.install(b"not a key", b"not a cert")
    with pytest.raises(ValueError, match="no PEM certificate"):
        ServingCertificate(b"", require_client_auth=True)


def test_a_control_channel_needs_the_name_to_check() -> None:
    with pytest.raises(ValueError, match="identity to check"):
        control_channel_options("")
    assert control_channel_options("a.b") == (("grpc.ssl_target_name_override", "a.b"),)


@pytest.mark.parametrize("service", ["IDENTITY", "DESTINATION", "POLICY"])
def test_with_identity_every_control_plane_name_is_required(
    mesh: Mesh, tmp_path: Path, service: str
) -> None:
    env = proxy_env(
        mesh,
        "web",
        token=token_file(tmp_path, "web"),
        identity_port=1,
        destination_port=2,
        policy_port=3,
    )
    del env[f"LINKERD2_PROXY_{service}_SVC_NAME"]
    with pytest.raises(EnvError, match=f"LINKERD2_PROXY_{service}_SVC_NAME: required"):
        load(env)


async def test_a_control_plane_service_is_certified_by_identity_as_a_proxy_is(
    mesh: Mesh, tmp_path: Path
) -> None:
    """Destination and policy ask identity with their token over verified TLS, then serve."""
    name = f"linkerd-destination.demo.serviceaccount.identity.linkerd.{TRUST_DOMAIN}"
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(mesh.anchors_pem())
    async with identity_service(mesh) as port:
        args = argparse.Namespace(
            identity_name=name,
            trust_anchors=anchors,
            identity_token_file=token_file(tmp_path, "linkerd-destination"),
            identity_addr=f"{LOOPBACK}:{port}",
            identity_svc_name=IDENTITY_SVC_NAME,
        )
        certified = await certify_from_identity(identity_settings(args))
        try:
            assert certified.serving.ready
            fake = FakeDestination()
            fake.profiles[SERVICE] = dpb.DestinationProfile(fully_qualified_name="bb")
            async with destination_server(fake, certified.serving) as dst:
                pem = await asyncio.to_thread(
                    _server_certificate_pem, dst.port, name, mesh.anchors_pem()
                )
        finally:
            await certified.close()
    (leaf, *_) = x509.load_pem_x509_certificates(pem)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [name]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("identity_name", "not-an-identity", "--identity-name"),
        ("identity_svc_name", "identity.linkerd.cluster.local", "--identity-svc-name"),
        ("identity_addr", "no port", "--identity-addr"),
        ("trust_anchors", Path("/nonexistent/anchors.pem"), "--trust-anchors"),
    ],
)
def test_bad_identity_flags_stop_the_service_with_the_flag_named(
    mesh: Mesh, tmp_path: Path, flag: str, value: object, message: str
) -> None:
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(mesh.anchors_pem())
    args = argparse.Namespace(
        identity_name=DESTINATION_SVC_NAME,
        trust_anchors=anchors,
        identity_token_file=tmp_path / "token",
        identity_addr=f"{LOOPBACK}:8080",
        identity_svc_name=IDENTITY_SVC_NAME,
    )
    setattr(args, flag, value)
    with pytest.raises(SystemExit, match=message):
        identity_settings(args)


async def test_each_certificate_gets_new_mtls_channels_and_old_ones_are_bounded(
    mesh: Mesh, tmp_path: Path
) -> None:
    renewal = RenewalPolicy(fraction=0.001, min_wait=0.05, jitter=0.0)
    async with identity_service(mesh, lifetime=timedelta(seconds=30)) as port:
        env = _env(mesh, tmp_path, port, destination_port=free_port(), policy_port=free_port())
        runtime = ProxyRuntime(load(env), RuntimeOptions(renewal=renewal))
        try:
            await runtime.start()
            assert runtime.identity is not None
            identity = runtime.identity
            await wait_until(lambda: identity.renewals >= KEPT_CHANNEL_GENERATIONS + 2, 3 * WAIT)
            generations = list(runtime._mtls)
        finally:
            await runtime.stop()
    assert len(generations) == KEPT_CHANNEL_GENERATIONS
    assert all(len(pair) == 2 for pair in generations), "destination and policy each"
