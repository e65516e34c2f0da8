"""Two proxies as the process runs them, in-process on loopback, from their environments.

app client -> outbound proxy ("web") -> mTLS -> inbound proxy ("bb") -> app. Each
proxy gets its certificate from the real identity service (fake token
reviewer); the client proxy resolves the service through a fake destination
service over gRPC. The original destination is named explicitly (no iptables
in unit tests). CONF-25, CONF-30, CONF-33, CONF-34 and "killing the destination
service does not interrupt traffic".
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from cryptography import x509

from mesh.proto import destination_pb2 as dpb
from mesh.proto import inbound_pb2 as ipb
from mesh.proxy.backoff import BackoffSettings
from mesh.proxy.discovery import Address
from mesh.proxy.envconfig import load
from mesh.proxy.identity_client import RenewalPolicy
from mesh.proxy.origdst import fixed_destination
from mesh.proxy.policy import StaticPolicy
from mesh.proxy.runtime import ProxyRuntime, RuntimeOptions
from mesh.proxy.server import Proxy
from mesh.proxy.tls import client_context
from tests.proxy.proxy_support import (
    LOOPBACK,
    FakeDiscovery,
    Mesh,
    Seen,
    identity,
    loopback_config,
    port_of,
    start_echo_app,
    start_http_app,
)
from tests.proxy_runtime.runtime_support import (
    WAIT,
    FakeDestination,
    FakePolicy,
    GrpcServer,
    add,
    admin_get,
    control_plane_tls,
    destination_server,
    free_port,
    identity_service,
    policy_server,
    proxy_env,
    series,
    token_file,
    wait_until,
    weighted,
)

SERVICE = Address("10.43.0.10", 8080)
FQN = "bb.demo.svc.cluster.local"
AUTHORITY = f"{FQN}:8080"
WEB = identity("web")
BB = identity("bb")
QUICK = BackoffSettings(initial=0.02, maximum=0.2)


@dataclass
class World:
    client: ProxyRuntime
    server: ProxyRuntime
    destination: FakeDestination
    destination_server: GrpcServer
    policy: FakePolicy
    seen: Seen
    app_port: int

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://{LOOPBACK}:{self.client.proxy.outbound_port}",
            headers={"host": AUTHORITY},
            timeout=WAIT,
        )

    def publish(self, pod: str = "bb-0") -> None:
        port = self.server.proxy.inbound_port
        self.destination.profiles[str(SERVICE)] = dpb.DestinationProfile(fully_qualified_name=FQN)
        self.destination.first[AUTHORITY] = add(
            weighted(port, BB, pod=pod), namespace="demo", service="bb"
        )


@contextlib.asynccontextmanager
async def world(
    mesh: Mesh,
    tmp_path: Path,
    *,
    lifetime: timedelta = timedelta(hours=1),
    renewal: RenewalPolicy | None = None,
    target: Address | None = None,
    policy: bool = False,
) -> AsyncIterator[World]:
    seen = Seen()
    app = await start_http_app(seen)
    app_port = port_of(app)
    destination, policies = FakeDestination(), FakePolicy()
    try:
        async with (
            identity_service(mesh, lifetime=lifetime) as identity_port,
            destination_server(destination, control_plane_tls(mesh)) as dst,
            policy_server(policies, control_plane_tls(mesh)) as pol,
        ):
            server_env = proxy_env(
                mesh,
                "bb",
                token=token_file(tmp_path, "bb"),
                identity_port=identity_port,
                destination_port=dst.port,
                policy_port=pol.port if policy else None,
                LINKERD2_PROXY_INBOUND_PORTS=str(app_port),
            )
            client_env = proxy_env(
                mesh,
                "web",
                token=token_file(tmp_path, "web"),
                identity_port=identity_port,
                destination_port=dst.port,
                LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS="10.0.0.0/8,127.0.0.0/8",
            )
            server = ProxyRuntime(
                load(server_env),
                RuntimeOptions(
                    config=loopback_config(),
                    inbound_destination=fixed_destination(Address(LOOPBACK, app_port)),
                    renewal=renewal,
                    backoff=QUICK,
                ),
            )
            client = ProxyRuntime(
                load(client_env),
                RuntimeOptions(
                    config=loopback_config(),
                    outbound_destination=fixed_destination(target or SERVICE),
                    renewal=renewal,
                    backoff=QUICK,
                ),
            )
            async with server, client:
                w = World(client, server, destination, dst, policies, seen, app_port)
                w.publish()
                yield w
    finally:
        app.close()
        await app.wait_closed()


async def metrics(runtime: ProxyRuntime) -> str:
    response = await admin_get(runtime.proxy.admin_port, "/metrics")
    assert response.status_code == 200
    return response.text


async def test_certified_proxies_carry_a_request_over_mtls(mesh: Mesh, tmp_path: Path) -> None:
    """CONF-25, CONF-30, CONF-33: the app sees the client proxy's identity; metrics say mTLS."""
    async with world(mesh, tmp_path) as w, w.http() as http:
        for n in range(3):
            response = await http.get(f"/hello/{n}")
            assert response.status_code == 200
            assert response.text == f"app /hello/{n} {WEB}"
        assert w.seen.requests[0]["l5d-client-id"] == WEB
        for runtime in (w.client, w.server):
            ready = await admin_get(runtime.proxy.admin_port, "/ready")
            assert ready.status_code == 200
        client_metrics, server_metrics = await metrics(w.client), await metrics(w.server)
        assert w.client.proxy.tls is not None
        assert w.client.proxy.tls.identity == WEB
    outbound = series(
        client_metrics,
        "request_total",
        direction="outbound",
        tls="true",
        server_id=BB,
        authority=AUTHORITY,
        dst_service="bb",
        dst_namespace="demo",
        dst_pod="bb-0",
    )
    assert outbound == 3
    inbound = series(
        server_metrics,
        "response_total",
        direction="inbound",
        tls="true",
        client_id=WEB,
        status_code="200",
    )
    assert inbound == 3
    assert ("GetProfile", str(SERVICE)) in w.destination.calls
    assert ("Get", AUTHORITY) in w.destination.calls


async def test_ready_only_after_the_first_certificate(mesh: Mesh, tmp_path: Path) -> None:
    identity_port = free_port()
    env = proxy_env(mesh, "web", token=token_file(tmp_path, "web"), identity_port=identity_port)
    runtime = ProxyRuntime(
        load(env), RuntimeOptions(config=loopback_config(), backoff=QUICK, renewal=FAST_RETRY)
    )
    starting = asyncio.create_task(runtime.start())
    try:
        await wait_until(lambda: "admin" in runtime.proxy._servers)
        port = runtime.proxy.admin_port
        assert (await admin_get(port, "/live")).status_code == 200
        assert (await admin_get(port, "/ready")).status_code == 503
        assert not starting.done()
        async with identity_service(mesh, port=identity_port):
            async with asyncio.timeout(WAIT):
                await starting
            assert (await admin_get(port, "/ready")).status_code == 200
            assert runtime.proxy.inbound_port > 0
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await runtime.stop()


FAST_RETRY = RenewalPolicy(retry=BackoffSettings(initial=0.05, maximum=0.2))


async def leaf_on(port: int, credentials_of: ProxyRuntime, name: str) -> int:
    """The serial of the leaf a fresh TLS handshake to ``port`` (SNI ``name``) is shown."""
    assert credentials_of.proxy.tls is not None
    context = client_context(credentials_of.proxy.tls.credentials)
    _, writer = await asyncio.open_connection(LOOPBACK, port, ssl=context, server_hostname=name)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()
    return int(x509.load_der_x509_certificate(der).serial_number)


def current_serial(runtime: ProxyRuntime) -> int:
    assert runtime.proxy.tls is not None
    pem = runtime.proxy.tls.credentials.certificate_chain_pem
    return int(x509.load_pem_x509_certificates(pem)[0].serial_number)


async def test_renewal_swaps_certificates_under_an_open_connection(
    mesh: Mesh, tmp_path: Path
) -> None:
    """Short-lived leaves renewed every ~second: the keep-alive connection (and its pooled
    mTLS upstream) keeps working, and new handshakes see the newest certificate."""
    renewal = RenewalPolicy(fraction=0.03, min_wait=0.3, retry=QUICK)
    async with world(mesh, tmp_path, lifetime=timedelta(seconds=30), renewal=renewal) as w:
        async with w.http() as http:
            # Discovery's first answer comes over mTLS to the destination service while
            # certificates renew every second: under CPU load it may come after the
            # first request's failfast, so the start converges before the test proper.
            statuses: list[int] = []

            async def first() -> bool:
                statuses.append((await http.get("/before")).status_code)
                return statuses[-1] == 200

            async with asyncio.timeout(WAIT):
                while not await first():
                    pass
            assert set(statuses[:-1]) <= {503}, f"only failfast before discovery: {statuses}"
            first_serial = current_serial(w.server)
            assert w.client.identity is not None
            assert w.server.identity is not None
            client_renewals = w.client.identity.renewals
            server_renewals = w.server.identity.renewals
            await wait_until(
                lambda: (
                    w.client.identity is not None
                    and w.server.identity is not None
                    and w.client.identity.renewals >= client_renewals + 2
                    and w.server.identity.renewals >= server_renewals + 2
                )
            )
            response = await http.get("/after")
            assert (response.status_code, response.text) == (200, f"app /after {WEB}")
            assert w.client.proxy.outbound.pool.opened == 1
        newest = current_serial(w.server)
        assert newest != first_serial
        assert await leaf_on(w.server.proxy.inbound_port, w.client, BB) == current_serial(w.server)


async def test_killing_the_destination_service_does_not_interrupt_traffic(
    mesh: Mesh, tmp_path: Path
) -> None:
    """Resolved endpoints stay in use while discovery is down; when it returns, the client
    reconnects and the new answer replaces the old one."""
    async with world(mesh, tmp_path) as w:
        async with w.http() as http:
            assert (await http.get("/before")).status_code == 200
        await w.destination_server.stop()
        for n in range(10):
            async with w.http() as http:  # new downstream connections each time
                response = await http.get(f"/during/{n}")
            assert response.status_code == 200
            await asyncio.sleep(0.02)
        w.publish(pod="bb-1")
        await w.destination_server.start()
        await wait_until(lambda: w.destination.open_streams(AUTHORITY) > 0)

        async def routed_to_bb_1() -> bool:
            async with w.http() as http:
                assert (await http.get("/after")).status_code == 200
            return series(await metrics(w.client), "request_total", dst_pod="bb-1") > 0

        async with asyncio.timeout(WAIT):
            while True:
                if await routed_to_bb_1():
                    break
                await asyncio.sleep(0.05)
    paths = [r["path"] for r in w.seen.requests]
    assert paths[:11] == ["/before", *(f"/during/{n}" for n in range(10))]
    assert "/after" in paths
    assert all(r["l5d-client-id"] == WEB for r in w.seen.requests)


async def test_a_target_unknown_to_discovery_is_forwarded_as_addressed(
    mesh: Mesh, tmp_path: Path
) -> None:
    """The destination service refuses the address: the proxy forwards to it in plaintext."""
    async with world(mesh, tmp_path) as w:
        direct = Address(LOOPBACK, w.app_port)
        w.client.proxy.outbound.original_destination = fixed_destination(direct)
        async with w.http() as http:
            response = await http.get("/direct")
        client_metrics = await metrics(w.client)
    assert (response.status_code, response.text) == (200, "app /direct -")
    assert ("GetProfile", str(direct)) in w.destination.calls
    assert (
        series(
            client_metrics,
            "request_total",
            direction="outbound",
            tls="no_identity",
            no_tls_reason="not_provided_by_service_discovery",
        )
        == 1
    )


async def test_inbound_policy_from_the_policy_service(mesh: Mesh, tmp_path: Path) -> None:
    """CONF-34: a server admitting only another identity answers the client 403."""
    async with world(mesh, tmp_path, policy=True) as w:
        w.policy.set(
            w.app_port,
            ipb.Server(
                authorizations=[
                    ipb.Authz(
                        networks=[ipb.Network(net="0.0.0.0/0")],
                        authentication=ipb.Authn(
                            tls_authenticated=ipb.Authn.PermitTls(identities=[identity("good")])
                        ),
                        labels={"name": "bb-good", "kind": "authorizationpolicy"},
                    )
                ],
                labels={"name": "bb", "kind": "server", "group": "policy.linkerd.io"},
            ),
        )
        await wait_until(lambda: w.server.policy.known(w.app_port))
        async with w.http() as http:
            response = await http.get("/")
        server_metrics = await metrics(w.server)
    assert response.status_code == 403
    assert w.seen.requests == []
    assert series(server_metrics, "inbound_http_authz_deny_total", srv_name="bb") == 1
    assert ("demo:bb-0", w.app_port) in w.policy.watched


async def test_shutdown_stops_accepting_and_lets_open_connections_finish() -> None:
    """SIGTERM's drain: new connections are refused at once, open ones finish within the grace."""
    echo = await start_echo_app()
    proxy = Proxy(
        loopback_config(detect=0.2),
        discovery=FakeDiscovery(),
        policy=StaticPolicy(),
        tls=None,
        inbound_destination=fixed_destination(Address(LOOPBACK, port_of(echo))),
    )
    try:
        await proxy.start()
        port = proxy.inbound_port
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        writer.write(b"\x00opaque bytes")
        assert await reader.readexactly(13) == b"\x00opaque bytes"
        shutting_down = asyncio.create_task(proxy.shutdown(WAIT))
        await asyncio.sleep(0.05)
        refused = False
        try:
            _, late = await asyncio.open_connection(LOOPBACK, port)
            late.close()
        except ConnectionRefusedError:
            refused = True
        assert refused
        writer.write(b"more")
        assert await reader.readexactly(4) == b"more"
        assert not shutting_down.done()
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        async with asyncio.timeout(WAIT / 2):
            await shutting_down
    finally:
        await proxy.stop()
        echo.close()
        await echo.wait_closed()
