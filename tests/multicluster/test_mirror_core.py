"""The mirror core as scenarios: events in, commands and Link status out (CONF-1..16)."""

from __future__ import annotations

from dataclasses import replace

from mesh.k8s.events import Deleted, Upserted
from mesh.k8s.objects import ObjectKey, Service
from mesh.multicluster.mirror.desired import MirrorEndpoints, Mode, mirror_service
from mesh.multicluster.mirror.liveness import ProbeOutcome
from mesh.multicluster.mirror.messages import (
    ApplyEndpoints,
    ApplyService,
    Command,
    CommandFailed,
    DeleteMirror,
    GatewayState,
    LinkInvalid,
    LinkUpdated,
    LocalEvent,
    Namespace,
    ProbeResult,
    RecordEvent,
    RemoteEvent,
    RemoteFailed,
    Retry,
)
from tests.multicluster.mirror_support import (
    Driver,
    as_service,
    link,
    remote_service,
    remote_slice,
    synced_core,
)

WEB = ObjectKey("shop", "web-east")


def applied(commands: list[Command]) -> list[ObjectKey]:
    return [c.service.key for c in commands if isinstance(c, ApplyService)]


def deleted(commands: list[Command]) -> list[ObjectKey]:
    return [c.key for c in commands if isinstance(c, DeleteMirror)]


def endpoints(commands: list[Command]) -> list[ApplyEndpoints]:
    return [c for c in commands if isinstance(c, ApplyEndpoints)]


def events(commands: list[Command]) -> list[tuple[str, str]]:
    return [(c.type, c.reason) for c in commands if isinstance(c, RecordEvent)]


def mirror_of(remote: Service) -> Service:
    return as_service(mirror_service(remote, link(), Mode.GATEWAY))


def entry(driver: Driver, name: str = "web") -> dict[str, object]:
    status = driver.core.status()
    (found,) = [e for e in status["mirrorServices"] if e["remoteRef"]["name"] == name]
    return found  # type: ignore[no-any-return]


def ready_condition(driver: Driver) -> dict[str, str]:
    (cond,) = driver.core.status()["conditions"]
    return cond  # type: ignore[no-any-return]


def test_nothing_is_written_before_every_input_is_listed() -> None:
    _, out = synced_core(remote=[remote_service()])
    assert applied(out) == [WEB]
    # The same inputs missing one listing (the remote's Services) do nothing.
    from mesh.multicluster.mirror.core import MirrorCore

    core = MirrorCore("east")
    lk = link()
    assert core.handle(LinkUpdated(lk, lk.gateway_addresses)) == []
    assert core.handle(RemoteEvent(Upserted(remote_service()))) == []
    assert not core.synced


def test_an_exported_service_is_mirrored_with_endpoints_and_reported() -> None:
    """CONF-1, CONF-8, CONF-9, CONF-15."""
    driver, out = synced_core(remote=[remote_service()], slices=[remote_slice("web")])
    (create,) = [c for c in out if isinstance(c, ApplyService)]
    assert create.create
    (eps,) = endpoints(out)
    assert eps.endpoints.ready == ("172.30.1.3", "172.30.1.20")
    assert entry(driver)["conditions"][0]["status"] == "False"  # type: ignore[index]
    driver.settle(out)
    got = entry(driver)
    assert got["controllerName"] == "linkerd.io/service-mirror"
    assert got["remoteRef"] == {"group": "", "kind": "Service", "name": "web", "namespace": "shop"}
    (cond,) = got["conditions"]  # type: ignore[misc]
    assert cond["type"] == "Mirrored"
    assert cond["status"] == "True"
    assert cond["localRef"] == {
        "group": "",
        "kind": "Service",
        "name": "web-east",
        "namespace": "shop",
    }
    assert ready_condition(driver)["status"] == "True"


def test_commands_are_not_repeated_while_pending() -> None:
    driver, out = synced_core(remote=[remote_service()])
    assert applied(out) == [WEB]
    # An unrelated event before the apply is observed asks for nothing again.
    again = driver.feed(RemoteEvent(Upserted(remote_service(rv="100"))))
    assert applied(again) == []
    assert endpoints(again) == []


def test_updates_only_when_the_remote_resource_version_changes() -> None:
    """CONF-4."""
    driver, out = synced_core(remote=[remote_service(rv="100")])
    driver.settle(out)
    same = driver.feed(RemoteEvent(Upserted(remote_service(rv="100"))))
    assert same == []
    changed = driver.feed(RemoteEvent(Upserted(remote_service(rv="101", annotations={"n": "2"}))))
    (update,) = [c for c in changed if isinstance(c, ApplyService)]
    assert not update.create
    assert update.service.annotations["mirror.linkerd.io/remote-resource-version"] == "101"
    assert update.service.annotations["n"] == "2"


def test_a_mirror_already_current_at_start_is_left_alone() -> None:
    """CONF-4: a restart does not rewrite mirrors."""
    remote = remote_service(rv="100")
    _, out = synced_core(remote=[remote], local=[mirror_of(remote)])
    assert applied(out) == []


def test_unexport_and_remote_deletion_delete_the_mirror() -> None:
    """CONF-12."""
    api = remote_service("api")
    driver, out = synced_core(remote=[remote_service(), api])
    driver.settle(out)
    out = driver.feed(RemoteEvent(Upserted(remote_service(labels={"app": "web"}, rv="200"))))
    assert deleted(out) == [WEB]
    driver.settle(out)
    out = driver.feed(RemoteEvent(Deleted(api)))
    assert deleted(out) == [ObjectKey("shop", "api-east")]
    driver.settle(out)
    assert driver.core.mirrors() == {}
    assert driver.core.status()["mirrorServices"] == []


def test_orphaned_mirrors_are_collected_at_start_and_foreign_services_are_not() -> None:
    """CONF-13."""
    kept = remote_service("kept")
    orphan = mirror_of(remote_service("gone"))
    foreign = Service("shop", "other-east", labels={"app": "other"})
    other_link = replace(
        mirror_of(remote_service("x")),
        labels={
            "mirror.linkerd.io/mirrored-service": "true",
            "mirror.linkerd.io/cluster-name": "west",
        },
    )
    _, out = synced_core(remote=[kept], local=[orphan, foreign, other_link, mirror_of(kept)])
    assert deleted(out) == [ObjectKey("shop", "gone-east")]
    assert ("Normal", "OrphanedServicesGc") in events(out)


def test_another_links_mirrors_and_their_endpoints_are_never_touched() -> None:
    """Two links in one cluster: a full pass of one never deletes the other's mirrors,
    whose names do not end with this link's cluster (found by the suite, CONF-12/13)."""
    theirs = {
        "mirror.linkerd.io/mirrored-service": "true",
        "mirror.linkerd.io/cluster-name": "west",
    }
    their_service = replace(mirror_of(remote_service("api")), name="api-west", labels=theirs)
    their_endpoints = MirrorEndpoints("shop", "api-west", labels=theirs)
    driver, out = synced_core(local=[their_service], endpoints=[their_endpoints])
    assert deleted(out) == [], f"deleted another link's mirror: {out}"
    later = driver.feed(LocalEvent(Upserted(replace(their_endpoints, ready=("10.0.0.9",)))))
    later += driver.feed(LinkUpdated(replace(link(), probe=replace(link().probe)), ("1.1.1.1",)))
    assert deleted(later) == [], f"deleted another link's mirror: {later}"


def test_a_missing_namespace_is_reported_and_the_mirror_follows_its_creation() -> None:
    """CONF-14."""
    remote = remote_service(ns="billing")
    driver, out = synced_core(remote=[remote])
    assert applied(out) == []
    assert ("Warning", "MissingNamespace") in events(out)
    cond = entry(driver)["conditions"][0]  # type: ignore[index]
    assert (cond["status"], cond["reason"]) == ("False", "MissingNamespace")
    out = driver.feed(LocalEvent(Upserted(Namespace("billing"))))
    assert applied(out) == [ObjectKey("billing", "web-east")]
    driver.settle(out)
    assert entry(driver)["conditions"][0]["status"] == "True"  # type: ignore[index]


def test_endpoints_fill_in_when_the_remote_becomes_ready() -> None:
    """CONF-9."""
    driver, out = synced_core(remote=[remote_service()], slices=[remote_slice("web", ready=False)])
    (eps,) = endpoints(out)
    assert eps.endpoints.empty
    assert eps.endpoints.manifest()["subsets"] == []
    driver.settle(out)
    out = driver.feed(RemoteEvent(Upserted(remote_slice("web", ready=True))))
    (eps,) = endpoints(out)
    assert eps.endpoints.ready == ("172.30.1.3", "172.30.1.20")
    driver.settle(out)
    out = driver.feed(RemoteEvent(Deleted(remote_slice("web"))))
    (eps,) = endpoints(out)
    assert eps.endpoints.empty


def fail() -> ProbeResult:
    return ProbeResult(ProbeOutcome(None, 5.0, "ConnectError"))


def test_failed_probes_move_addresses_to_not_ready_and_one_success_back() -> None:
    """CONF-10, CONF-11."""
    driver, out = synced_core(remote=[remote_service()], slices=[remote_slice("web")])
    driver.settle(out)
    out = driver.feed(ProbeResult(ProbeOutcome(200, 12.0)))
    assert out == [GatewayState(True, 12.0)]
    for _ in range(2):
        out = driver.feed(fail())
        assert endpoints(out) == []
        assert GatewayState(True, None) in out
    out = driver.feed(ProbeResult(ProbeOutcome(503, 3.0)))  # only 200 is a success
    (eps,) = endpoints(out)
    assert eps.endpoints.ready == ()
    assert eps.endpoints.not_ready == ("172.30.1.3", "172.30.1.20")
    assert GatewayState(False, None) in out
    assert ("Warning", "GatewayDown") in events(out)
    driver.settle(out)
    assert endpoints(driver.feed(fail())) == []
    out = driver.feed(ProbeResult(ProbeOutcome(200, 9.0)))
    (eps,) = endpoints(out)
    assert eps.endpoints.ready == ("172.30.1.3", "172.30.1.20")
    assert eps.endpoints.not_ready == ()
    assert ("Normal", "GatewayAlive") in events(out)


def test_each_gateway_address_has_its_own_liveness() -> None:
    """CONF-10 per address: a dead address alone is not ready; the gateway stays alive."""
    driver, out = synced_core(remote=[remote_service()], slices=[remote_slice("web")])
    driver.settle(out)
    down = ProbeResult(ProbeOutcome(None, 5.0, "ConnectError"), "172.30.1.3")
    up = ProbeResult(ProbeOutcome(200, 2.0), "172.30.1.20")
    for _ in range(2):
        assert endpoints(driver.feed(down)) == []
        assert endpoints(driver.feed(up)) == []
    out = driver.feed(down)
    (eps,) = endpoints(out)
    assert eps.endpoints.ready == ("172.30.1.20",)
    assert eps.endpoints.not_ready == ("172.30.1.3",)
    assert GatewayState(True, None) in out, "alive while one address answers"
    assert ("Warning", "GatewayAddressDown") in events(out)
    assert driver.core.gateway_alive is True
    driver.settle(out)
    out = driver.feed(ProbeResult(ProbeOutcome(200, 2.0), "172.30.1.3"))
    (eps,) = endpoints(out)
    assert eps.endpoints.ready == ("172.30.1.3", "172.30.1.20")
    assert ("Normal", "GatewayAddressAlive") in events(out)
    driver.settle(out)
    for _ in range(3):
        out = driver.feed(ProbeResult(ProbeOutcome(None, 5.0, "x"), "172.30.1.3"))
        out += driver.feed(ProbeResult(ProbeOutcome(None, 5.0, "x"), "172.30.1.20"))
        driver.settle(out)
    assert driver.core.gateway_alive is False
    assert ("Warning", "GatewayDown") in events(driver.log)


def test_an_invalid_link_freezes_mirrors_and_is_reported() -> None:
    driver, out = synced_core(remote=[remote_service()])
    driver.settle(out)
    out = driver.feed(LinkInvalid("InvalidLink", "spec.selector must be a label selector"))
    assert ("Warning", "InvalidLink") in events(out)
    assert ready_condition(driver)["reason"] == "InvalidLink"
    # While invalid, nothing is mirrored or deleted.
    out = driver.feed(RemoteEvent(Deleted(remote_service())))
    assert deleted(out) == []
    out = driver.feed(LinkUpdated(link(), link().gateway_addresses))
    assert deleted(out) == [WEB]
    assert ready_condition(driver)["status"] == "True"


def test_an_unreachable_remote_is_reported_until_it_lists_again() -> None:
    from mesh.k8s.events import Listed
    from mesh.k8s.objects import EndpointSlice

    driver, out = synced_core(remote=[remote_service()])
    out = driver.feed(RemoteFailed("RemoteUnreachable", "connection refused"))
    assert ("Warning", "RemoteUnreachable") in events(out)
    assert driver.feed(RemoteFailed("RemoteUnreachable", "connection refused")) == []
    assert ready_condition(driver)["reason"] == "RemoteUnreachable"
    out = driver.feed(RemoteEvent(Listed(EndpointSlice, ())))
    assert ("Normal", "RemoteReachable") in events(out)
    assert ready_condition(driver)["status"] == "True"


def test_a_local_service_of_the_same_name_is_never_taken_over() -> None:
    foreign = Service("shop", "web-east", labels={"app": "mine"})
    driver, out = synced_core(remote=[remote_service()], local=[foreign])
    assert applied(out) == []
    assert deleted(out) == []
    assert entry(driver)["conditions"][0]["reason"] == "NameConflict"  # type: ignore[index]
    assert ("Warning", "NameConflict") in events(out)


def test_an_unmirrorable_service_is_reported_and_others_proceed() -> None:
    driver, out = synced_core(remote=[remote_service("x" * 60), remote_service()])
    assert applied(out) == [WEB]
    assert entry(driver, "x" * 60)["conditions"][0]["reason"] == "InvalidMirrorName"  # type: ignore[index]


def test_a_failed_write_is_reported_and_retried() -> None:
    driver, out = synced_core(remote=[remote_service()])
    assert applied(out) == [WEB]
    out = driver.feed(CommandFailed(WEB, "service failed: 500"))
    assert applied(out) == []  # not before the retry
    assert entry(driver)["conditions"][0]["reason"] == "ApplyFailed"  # type: ignore[index]
    assert ("Warning", "ApplyFailed") in events(out)
    out = driver.feed(Retry((WEB,)))
    assert applied(out) == [WEB]


def test_status_is_offered_only_when_changed() -> None:
    driver, out = synced_core(remote=[remote_service()])
    assert driver.core.take_status() is not None
    assert driver.core.take_status() is None
    driver.settle(out)
    assert driver.core.take_status() is not None
    driver.core.mark_status_dirty()
    assert driver.core.take_status() is not None


def test_remote_discovery_mirrors_have_no_endpoints() -> None:
    remote = remote_service(labels={"mirror.linkerd.io/exported": "remote-discovery"})
    _, out = synced_core(remote=[remote], slices=[remote_slice("web")])
    (svc,) = [c for c in out if isinstance(c, ApplyService)]
    assert svc.service.labels["multicluster.linkerd.io/remote-discovery"] == "east"
    assert endpoints(out) == []


def test_a_delete_is_asked_once_while_its_service_and_endpoints_go() -> None:
    remote = remote_service()
    driver, out = synced_core(remote=[remote], slices=[remote_slice("web")])
    driver.settle(out)
    out = driver.feed(RemoteEvent(Deleted(remote)))
    assert deleted(out) == [WEB]
    # The Service's deletion is seen before the Endpoints': nothing is asked again.
    assert driver.feed(LocalEvent(Deleted(Service("shop", "web-east")))) == []
    from mesh.multicluster.mirror.desired import MirrorEndpoints

    assert driver.feed(LocalEvent(Deleted(MirrorEndpoints("shop", "web-east")))) == []
    assert driver.core.mirrors() == {}
