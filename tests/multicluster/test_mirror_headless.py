"""Headless mirrors (CONF-29): per-host mirrors and the headless Endpoints naming them."""

from __future__ import annotations

from dataclasses import replace

from lightkube.resources import core_v1

from mesh.k8s.events import Deleted, Upserted
from mesh.k8s.objects import Endpoint, EndpointSlice, ObjectKey, Service
from mesh.multicluster import labels
from mesh.multicluster.mirror.desired import MirrorEndpoints
from mesh.multicluster.mirror.headless import headless_hosts
from mesh.multicluster.mirror.kube import endpoints as endpoints_of
from mesh.multicluster.mirror.messages import (
    ApplyEndpoints,
    ApplyService,
    Command,
    CommandFailed,
    DeleteMirror,
    LocalEvent,
    RemoteEvent,
    Retry,
)
from tests.multicluster.mirror_support import Driver, cluster_ip_of, remote_service, synced_core

DB = ObjectKey("shop", "db-east")
DB0 = ObjectKey("shop", "db-0-east")
DB1 = ObjectKey("shop", "db-1-east")


def headless_db() -> Service:
    return replace(remote_service("db"), cluster_ip="None", cluster_ips=("None",))


def db_slice(*hosts: tuple[str, bool], name: str = "db-xyz") -> EndpointSlice:
    return EndpointSlice(
        namespace="shop",
        name=name,
        service_name="db",
        endpoints=tuple(
            Endpoint((f"10.23.0.{i + 10}",), ready=ready, hostname=host)
            for i, (host, ready) in enumerate(hosts)
        ),
    )


def services(commands: list[Command]) -> dict[ObjectKey, ApplyService]:
    return {c.service.key: c for c in commands if isinstance(c, ApplyService)}


def eps(commands: list[Command]) -> dict[ObjectKey, MirrorEndpoints]:
    return {c.endpoints.key: c.endpoints for c in commands if isinstance(c, ApplyEndpoints)}


def settled(driver: Driver, out: list[Command]) -> list[Command]:
    """Every command of ``out`` and what the watch events of its writes called for."""
    start = len(driver.log)
    driver.settle(out)
    return out + driver.log[start:]


def test_hosts_qualify_only_when_every_endpoint_has_a_hostname() -> None:
    db = headless_db()
    assert headless_hosts(db, ()) == {}
    assert headless_hosts(db, db_slice(("db-0", True), ("db-1", False)).endpoints) == {
        "db-0": True,
        "db-1": False,
    }
    assert headless_hosts(db, (Endpoint(("10.0.0.1",)),)) is None, "a pod without a hostname"
    assert headless_hosts(remote_service("db"), db_slice(("db-0", True)).endpoints) is None


def test_a_headless_export_becomes_a_headless_mirror_plus_one_mirror_per_host() -> None:
    driver, out = synced_core(
        remote=[headless_db()], slices=[db_slice(("db-0", True), ("db-1", True))]
    )
    log = settled(driver, out)
    svcs = services(log)
    assert svcs[DB].service.headless, "the mirror of a headless Service is headless"
    assert svcs[DB].service.manifest()["spec"]["clusterIP"] == "None"
    for key, host in ((DB0, "db-0"), (DB1, "db-1")):
        child = svcs[key].service
        assert not child.headless
        assert child.annotations[labels.HEADLESS_MIRROR_SVC_NAME] == "db-east"
        assert child.annotations[labels.REMOTE_SVC_FQ_NAME] == f"{host}.db.shop.svc.east.local"
        assert child.labels[labels.CLUSTER_NAME] == "east"
    last = {c.endpoints.key: c.endpoints for c in driver.log if isinstance(c, ApplyEndpoints)}
    assert last[DB0].ready == ("172.30.1.3", "172.30.1.20"), "per-host mirrors go to the gateway"
    assert last[DB0].annotations[labels.REMOTE_GATEWAY_IDENTITY]
    parent = last[DB]
    assert parent.hostnames == {
        cluster_ip_of("db-0-east"): "db-0",
        cluster_ip_of("db-1-east"): "db-1",
    }
    assert sorted(parent.ready) == sorted([cluster_ip_of("db-0-east"), cluster_ip_of("db-1-east")])
    assert labels.REMOTE_GATEWAY_IDENTITY not in parent.annotations
    manifest = parent.manifest()
    assert {a["hostname"] for a in manifest["subsets"][0]["addresses"]} == {"db-0", "db-1"}
    assert driver.core.mirrors().keys() >= {DB, DB0, DB1}
    # Settled: nothing more to ask.
    assert driver.core.handle(Retry(())) == []


def test_a_host_that_leaves_takes_its_mirror_and_a_new_one_gets_one() -> None:
    driver, out = synced_core(
        remote=[headless_db()], slices=[db_slice(("db-0", True), ("db-1", True))]
    )
    driver.settle(out)
    out = driver.feed(RemoteEvent(Upserted(db_slice(("db-0", True), ("db-2", False)))))
    log = settled(driver, out)
    assert [c.key for c in log if isinstance(c, DeleteMirror)] == [DB1]
    assert ObjectKey("shop", "db-2-east") in services(log)
    last = {c.endpoints.key: c.endpoints for c in driver.log if isinstance(c, ApplyEndpoints)}
    assert last[DB].not_ready == (cluster_ip_of("db-2-east"),), "db-2 is not ready yet"
    assert last[ObjectKey("shop", "db-2-east")].empty, "no gateway endpoints while not ready"
    assert DB1 not in driver.core.mirrors()


def test_unexporting_deletes_the_headless_mirror_and_every_per_host_mirror() -> None:
    driver, out = synced_core(
        remote=[headless_db()], slices=[db_slice(("db-0", True), ("db-1", True))]
    )
    driver.settle(out)
    out = driver.feed(
        RemoteEvent(Upserted(replace(headless_db(), labels={}, resource_version="2")))
    )
    log = settled(driver, out)
    assert sorted(c.key for c in log if isinstance(c, DeleteMirror)) == sorted([DB, DB0, DB1])
    assert not driver.core.mirrors()


def test_per_host_mirrors_survive_a_restart_and_orphans_are_collected() -> None:
    driver, out = synced_core(
        remote=[headless_db()], slices=[db_slice(("db-0", True), ("db-1", True))]
    )
    driver.settle(out)
    local = list(driver.core.mirrors().values())
    local_eps = [c.endpoints for c in driver.log if isinstance(c, ApplyEndpoints)]
    latest = {e.key: e for e in local_eps}
    # A new controller lists the same local cluster: nothing to do while db keeps both hosts.
    _again, out = synced_core(
        remote=[headless_db()],
        slices=[db_slice(("db-0", True), ("db-1", True))],
        local=local,
        endpoints=list(latest.values()),
    )
    assert [c for c in out if isinstance(c, DeleteMirror | ApplyService)] == []
    # ... and when db is gone from the target meanwhile, all three are collected.
    _gone, out = synced_core(remote=[], local=local, endpoints=list(latest.values()))
    assert sorted(c.key for c in out if isinstance(c, DeleteMirror)) == sorted([DB, DB0, DB1])


def test_a_remote_that_stops_qualifying_is_recreated_as_clusterip() -> None:
    driver, out = synced_core(remote=[headless_db()], slices=[db_slice(("db-0", True))])
    driver.settle(out)
    plain = EndpointSlice("shop", "db-xyz", "db", endpoints=(Endpoint(("10.23.0.9",)),))
    out = driver.feed(RemoteEvent(Upserted(plain)))
    log = settled(driver, out)
    assert DB in [c.key for c in log if isinstance(c, DeleteMirror)]
    recreated = [c.service for c in log if isinstance(c, ApplyService) and c.service.key == DB]
    assert recreated, f"the mirror was not created again: {log}"
    assert not recreated[-1].headless
    assert DB0 not in driver.core.mirrors()


def test_a_failed_per_host_write_is_retried_through_its_parent() -> None:
    driver, out = synced_core(remote=[headless_db()], slices=[db_slice(("db-0", True))])
    assert DB0 in services(out)
    assert DB0 not in services(driver.feed(CommandFailed(DB0, "boom"))), "not at once"
    again = driver.feed(Retry((DB0,)))
    assert DB0 in services(again), again


def test_endpoints_read_back_keep_hostnames() -> None:
    manifest = MirrorEndpoints(
        "shop", "db-east", ready=("10.96.1.1",), hostnames={"10.96.1.1": "db-0"}
    ).manifest()
    manifest["subsets"][0]["ports"] = [{"port": 80, "protocol": "TCP"}]
    back = endpoints_of(core_v1.Endpoints.from_dict(manifest))
    assert back.hostnames == {"10.96.1.1": "db-0"}


def test_deleted_per_host_mirror_is_created_again() -> None:
    driver, out = synced_core(remote=[headless_db()], slices=[db_slice(("db-0", True))])
    driver.settle(out)
    out = driver.feed(LocalEvent(Deleted(Service("shop", "db-0-east"))))
    out += driver.feed(LocalEvent(Deleted(MirrorEndpoints("shop", "db-0-east"))))
    assert DB0 in services(out), f"a deleted per-host mirror was not restored: {out}"
