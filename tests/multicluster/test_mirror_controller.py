"""The controller against in-memory clusters: it mirrors, and bad input never stops it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import pytest
import yaml
from lightkube.core.exceptions import ApiError

from mesh.admin_port import AdminServer
from mesh.k8s.objects import Service
from mesh.multicluster.mirror.admin import MirrorMetrics
from mesh.multicluster.mirror.controller import (
    MirrorController,
    MirrorSettings,
    describe_remote_error,
)
from mesh.multicluster.mirror.messages import Namespace
from tests.multicluster.fakes import (
    FakeLocal,
    FakeProber,
    FakeRemote,
    IdentityResolver,
    LocalSeam,
)
from tests.multicluster.mirror_support import link_obj, remote_service, remote_slice
from tests.pem import self_signed_ca_pem

CONVERGE_TIMEOUT = 5.0
"""How long a scenario may take to converge on the fakes (they answer at once)."""
FAST = MirrorSettings(status_interval=0.01, retry_initial=0.01, retry_max=0.05, reconnect_after=3)
PEM = self_signed_ca_pem()
SECRET = "cluster-credentials-east"


def kubeconfig(token: str = "t0ken", server: str = "https://172.30.1.11:6443") -> str:
    return yaml.safe_dump(
        {
            "clusters": [
                {
                    "name": "east",
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(PEM.encode()).decode(),
                    },
                }
            ],
            "users": [{"name": "m", "user": {"token": token}}],
            "contexts": [{"name": "east", "context": {"cluster": "east", "user": "m"}}],
            "current-context": "east",
        }
    )


async def eventually(
    what: str, check: Callable[[], bool], timeout: float = CONVERGE_TIMEOUT
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"expected {what} within {timeout}s")
        await asyncio.sleep(0.005)


@dataclass
class World:
    local: FakeLocal
    remote: FakeRemote
    prober: FakeProber
    metrics: MirrorMetrics
    controller: MirrorController


@pytest.fixture
async def world() -> AsyncIterator[World]:
    local, remote, prober = FakeLocal(), FakeRemote(), FakeProber(200)
    local.namespaces.put("shop", Namespace("shop"))
    local.secrets[SECRET] = kubeconfig()
    metrics = MirrorMetrics("east")
    controller = MirrorController(
        "east",
        LocalSeam(local),
        remote,
        metrics,
        prober=prober,
        resolver=IdentityResolver(),
        settings=FAST,
    )
    task = asyncio.create_task(controller.run())
    yield World(local, remote, prober, metrics, controller)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert remote.open_sessions == 0, "a remote session was left open"


def status_entry(local: FakeLocal, name: str) -> dict[str, str] | None:
    if not local.statuses:
        return None
    for e in local.statuses[-1]["mirrorServices"]:
        if e["remoteRef"]["name"] == name:
            return e["conditions"][0]  # type: ignore[no-any-return]
    return None


def gauge(metrics: MirrorMetrics) -> float | None:
    return metrics.registry.get_sample_value("gateway_alive", {"target_cluster_name": "east"})


async def test_mirrors_follow_the_remote_and_the_link_reports_them(world: World) -> None:
    """CONF-1, 8, 9, 11, 12, 15 through the asyncio layer."""
    local, remote = world.local, world.remote
    web = remote_service()
    remote.export(web)
    remote.slices.put("s", remote_slice("web"))
    local.links.put("east", link_obj())
    await eventually("mirror shop/web-east", lambda: local.mirror("shop", "web-east") is not None)
    await eventually(
        "ready gateway endpoints",
        lambda: any(e.ready for e in local.endpoints.objects.values()),
    )
    await eventually(
        "Link status Mirrored=True",
        lambda: (status_entry(local, "web") or {}).get("status") == "True",
    )
    assert local.ready_reason() == "Mirroring"
    assert world.controller.ready
    await eventually("gateway_alive 1", lambda: gauge(world.metrics) == 1.0)
    remote.unexport(web)
    await eventually("mirror deleted", lambda: local.mirror("shop", "web-east") is None)
    await eventually("Link status emptied", lambda: status_entry(local, "web") is None)


async def test_a_dead_gateway_turns_endpoints_not_ready(world: World) -> None:
    """CONF-10, CONF-11: probes every period; after failureThreshold failures, notReady."""
    world.prober.status = 503
    spec = link_obj(probeSpec={"period": "10ms", "failureThreshold": "2", "port": "4191"})
    world.remote.export(remote_service())
    world.remote.slices.put("s", remote_slice("web"))
    world.local.links.put("east", spec)
    await eventually(
        "notReady gateway addresses",
        lambda: any(e.not_ready for e in world.local.endpoints.objects.values()),
    )
    assert gauge(world.metrics) == 0.0
    world.prober.status = 200
    await eventually(
        "ready gateway addresses",
        lambda: any(e.ready for e in world.local.endpoints.objects.values()),
    )
    assert gauge(world.metrics) == 1.0


async def test_every_gateway_address_is_probed_and_a_dead_one_alone_is_not_ready(
    world: World,
) -> None:
    """CONF-10 with two gateway addresses: the dead one moves to notReady, the other serves."""
    world.prober.by_host["172.30.1.3"] = None
    spec = link_obj(probeSpec={"period": "10ms", "failureThreshold": "2", "port": "4191"})
    world.remote.export(remote_service())
    world.remote.slices.put("s", remote_slice("web"))
    world.local.links.put("east", spec)

    def split() -> bool:
        return any(
            e.ready == ("172.30.1.20",) and e.not_ready == ("172.30.1.3",)
            for e in world.local.endpoints.objects.values()
        )

    await eventually("172.30.1.3 notReady and 172.30.1.20 ready", split)
    assert world.prober.hosts == {"172.30.1.3", "172.30.1.20"}
    assert gauge(world.metrics) == 1.0, "the gateway is alive while one address answers"
    del world.prober.by_host["172.30.1.3"]
    await eventually(
        "both addresses ready",
        lambda: any(len(e.ready) == 2 for e in world.local.endpoints.objects.values()),
    )


async def test_garbage_credentials_are_reported_and_retried(world: World) -> None:
    world.local.secrets[SECRET] = "{{{ not a kubeconfig"
    world.remote.export(remote_service())
    world.local.links.put("east", link_obj())
    await eventually(
        "InvalidCredentials", lambda: world.local.ready_reason() == "InvalidCredentials"
    )
    assert any(r == "InvalidCredentials" for _, r, _ in world.local.events)
    assert world.local.mirror("shop", "web-east") is None
    world.local.secrets[SECRET] = kubeconfig()
    await eventually(
        "mirror after the fix", lambda: world.local.mirror("shop", "web-east") is not None
    )
    await eventually("Ready again", lambda: world.local.ready_reason() == "Mirroring")


async def test_a_missing_secret_is_reported_and_retried(world: World) -> None:
    del world.local.secrets[SECRET]
    world.local.links.put("east", link_obj())
    await eventually(
        "CredentialsUnreadable", lambda: world.local.ready_reason() == "CredentialsUnreadable"
    )
    world.local.secrets[SECRET] = kubeconfig()
    await eventually("Ready", lambda: world.local.ready_reason() == "Mirroring")


async def test_an_unreachable_target_is_reported_then_mirrored_when_it_answers(
    world: World,
) -> None:
    world.remote.reachable = False
    world.remote.export(remote_service())
    world.local.links.put("east", link_obj())
    await eventually("RemoteUnreachable", lambda: world.local.ready_reason() == "RemoteUnreachable")
    # After ``reconnect_after`` failures in a row the credentials are read again.
    await eventually("a reconnect", lambda: len(world.remote.connected) >= 2)
    world.remote.reachable = True
    await eventually("mirror", lambda: world.local.mirror("shop", "web-east") is not None)
    await eventually("Ready", lambda: world.local.ready_reason() == "Mirroring")


async def test_an_invalid_link_is_reported_and_a_fixed_one_is_served(world: World) -> None:
    world.remote.export(remote_service())
    world.local.links.put(
        "east", link_obj(selector={"matchExpressions": [{"key": "a", "operator": "Like"}]})
    )
    await eventually("InvalidLink", lambda: world.local.ready_reason() == "InvalidLink")
    assert world.local.mirror("shop", "web-east") is None
    world.local.links.put("east", link_obj())
    await eventually("mirror", lambda: world.local.mirror("shop", "web-east") is not None)


async def test_failed_writes_are_retried(world: World) -> None:
    world.local.failures = {"apply_service": 2, "status": 1}
    world.remote.export(remote_service())
    world.local.links.put("east", link_obj())
    await eventually(
        "mirror after retries", lambda: world.local.mirror("shop", "web-east") is not None
    )
    errors = world.metrics.registry.get_sample_value(
        "service_mirror_writes_total",
        {"target_cluster_name": "east", "kind": "service", "outcome": "error"},
    )
    assert errors == 2.0
    await eventually(
        "status Mirrored=True",
        lambda: (status_entry(world.local, "web") or {}).get("status") == "True",
    )


async def test_orphans_are_collected_at_start(world: World) -> None:
    """CONF-13 through the asyncio layer: a mirror left from before is deleted once listed."""
    orphan = Service(
        "shop",
        "gone-east",
        labels={
            "mirror.linkerd.io/mirrored-service": "true",
            "mirror.linkerd.io/cluster-name": "east",
        },
    )
    world.local.services.put(orphan.key, orphan)
    world.remote.export(remote_service())
    world.local.links.put("east", link_obj())
    await eventually("orphan deleted", lambda: world.local.mirror("shop", "gone-east") is None)
    assert any(r == "OrphanedServicesGc" for _, r, _ in world.local.events)


async def test_admin_port_serves_metrics_ready_and_live() -> None:
    metrics = MirrorMetrics("east")
    ready = False
    admin = AdminServer(metrics.exposition, lambda: ready)
    port = await admin.start("127.0.0.1", 0)
    try:
        metrics.gateway(True, 12.0)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/ready") as r:
                assert r.status == 503
            ready = True
            async with session.get(f"http://127.0.0.1:{port}/ready") as r:
                assert r.status == 200
            async with session.get(f"http://127.0.0.1:{port}/live") as r:
                assert r.status == 200
            async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
        assert 'gateway_alive{target_cluster_name="east"} 1.0' in text
        assert 'gateway_probe_latency_ms_bucket{le="20.0",target_cluster_name="east"} 1.0' in text
    finally:
        await admin.stop()


@pytest.mark.parametrize(
    ("error", "reason", "says"),
    [
        (
            httpx2.ConnectError("All connection attempts failed"),
            "RemoteUnreachable",
            "ConnectError",
        ),
        (httpx2.ReadTimeout(""), "RemoteUnreachable", "ReadTimeout"),
    ],
)
def test_remote_errors_are_described(error: Exception, reason: str, says: str) -> None:
    got_reason, message = describe_remote_error(error)
    assert got_reason == reason
    assert says in message


@pytest.mark.parametrize(
    ("code", "reason"), [(401, "RemoteUnauthorized"), (403, "RemoteForbidden")]
)
def test_refusals_are_described(code: int, reason: str) -> None:
    request = httpx2.Request("GET", "https://target/api/v1/services")
    response = httpx2.Response(
        code,
        request=request,
        json={"kind": "Status", "code": code, "message": "services is forbidden", "reason": "x"},
    )
    error = ApiError(request=request, response=response)
    got_reason, message = describe_remote_error(error)
    assert got_reason == reason
    assert "services is forbidden" in message


async def test_a_failed_feed_stops_the_controller_instead_of_hanging() -> None:
    class Broken(LocalSeam):
        def namespaces(self) -> AsyncIterator[Any]:
            async def fail() -> AsyncIterator[Any]:
                raise ValueError("a namespace the converter cannot read")
                yield  # pragma: no cover - makes this an async generator

            return fail()

    local = FakeLocal()
    controller = MirrorController(
        "east", Broken(local), FakeRemote(), MirrorMetrics("east"), settings=FAST
    )
    with pytest.raises(RuntimeError, match="a namespace the converter cannot read"):
        await asyncio.wait_for(controller.run(), timeout=CONVERGE_TIMEOUT)


def test_the_flags_multicluster_link_renders_parse() -> None:
    """The flag contract with ``multicluster link``'s Deployment (issue 6 contract)."""
    from mesh.admin_port import parse_host_port
    from mesh.multicluster.mirror.__main__ import _parser

    args = _parser().parse_args(
        [
            "--link-name=east",
            "--namespace=linkerd-multicluster",
            "--metrics-addr=0.0.0.0:9999",
        ]
    )
    assert (args.link_name, args.namespace) == ("east", "linkerd-multicluster")
    assert parse_host_port(args.metrics_addr, "--metrics-addr") == ("0.0.0.0", 9999)
    assert _parser().parse_args(["--link-name=east"]).namespace == "linkerd-multicluster"
    with pytest.raises(SystemExit, match="is not host:port"):
        parse_host_port("9999", "--metrics-addr")
