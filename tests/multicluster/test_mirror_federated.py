"""Federated services (CONF-28) as scenarios: the merge rule, one core, and several controllers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx2
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources import core_v1

from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.objects import EndpointSlice, ObjectKey, Service, ServicePort
from mesh.multicluster import labels
from mesh.multicluster.mirror.core import MirrorCore
from mesh.multicluster.mirror.desired import MirrorEndpoints, is_mirror
from mesh.multicluster.mirror.federated import (
    FROM_ANNOTATION,
    Federated,
    claim_for,
    is_federated,
    merge,
)
from mesh.multicluster.mirror.kube import apply_claim
from mesh.multicluster.mirror.link import Link, parse_link
from mesh.multicluster.mirror.messages import (
    ApplyEndpoints,
    ApplyFederated,
    ApplyService,
    Command,
    CommandFailed,
    Event,
    LinkUpdated,
    LocalEvent,
    Namespace,
    RecordEvent,
    RemoteEvent,
    Retry,
)
from tests.multicluster.mirror_support import apply_claim_to, link_obj, remote_service

MEMBER = {labels.FEDERATED: labels.FEDERATED_MEMBER}
FED = ObjectKey("shop", "web-federated")
WEB = ObjectKey("shop", "web")


def member(
    created: str = "2026-01-01T00:00:00Z",
    *,
    extra: dict[str, str] | None = None,
    port: int = 80,
    name: str = "web",
) -> Service:
    svc = remote_service(
        name,
        labels={**MEMBER, "app": name, **(extra or {})},
        annotations={"team": created},
        ports=(ServicePort(port, "http", "TCP", 8080),),
    )
    return replace(svc, created=created)


def link_for(cluster: str) -> Link:
    obj = link_obj(
        targetClusterName=cluster,
        targetClusterDomain=f"{cluster}.local",
        clusterCredentialsSecret=f"cluster-credentials-{cluster}",
    )
    obj["metadata"]["name"] = cluster
    return parse_link(obj)


# -- the merge rule -------------------------------------------------------------------------


def test_merge_adds_each_cluster_without_clobbering_and_deletes_with_the_last() -> None:
    east = claim_for(WEB, link_for("east"), member(), None)
    west = claim_for(WEB, link_for("west"), member("2026-01-02T00:00:00Z"), None)
    one = merge(None, east)
    assert one is not None
    assert one.annotations[labels.REMOTE_DISCOVERY] == "web@east"
    assert labels.LOCAL_DISCOVERY not in one.annotations
    assert one.labels[labels.MIRRORED_SERVICE] == "true"
    assert labels.FEDERATED not in one.labels, "a federated Service is never a member itself"
    two = merge(one, west)
    assert two is not None
    assert two.annotations[labels.REMOTE_DISCOVERY] == "web@east,web@west"
    assert merge(two, west) is two, "a claim already reflected changes nothing"
    west_gone = merge(two, claim_for(WEB, link_for("west"), None, None))
    assert west_gone is not None
    assert west_gone.annotations[labels.REMOTE_DISCOVERY] == "web@east"
    assert merge(west_gone, claim_for(WEB, link_for("east"), None, None)) is None


def test_merge_takes_metadata_from_the_oldest_member_and_moves_it_when_it_leaves() -> None:
    young = member("2026-03-01T00:00:00Z", extra={"tier": "young"}, port=81)
    old = member("2026-01-01T00:00:00Z", extra={"tier": "old"}, port=80)
    first = merge(None, claim_for(WEB, link_for("west"), young, None))
    assert first is not None
    assert first.labels["tier"] == "young"
    second = merge(first, claim_for(WEB, link_for("east"), old, None))
    assert second is not None
    assert second.labels["tier"] == "old"
    assert [p.port for p in second.ports] == [80]
    assert second.annotations[FROM_ANNOTATION] == "2026-01-01T00:00:00Z web@east"
    # The younger member's controller sees the older owner and leaves it alone.
    assert merge(second, claim_for(WEB, link_for("west"), young, None)) is second
    # The owner leaves: its controller clears the record; the other claims the metadata.
    left = merge(second, claim_for(WEB, link_for("east"), None, None))
    assert left is not None
    assert FROM_ANNOTATION not in left.annotations
    reclaimed = merge(left, claim_for(WEB, link_for("west"), young, None))
    assert reclaimed is not None
    assert reclaimed.labels["tier"] == "young"
    assert [p.port for p in reclaimed.ports] == [81]
    assert reclaimed.annotations[labels.REMOTE_DISCOVERY] == "web@west"


def test_merge_local_member_sets_local_discovery_and_a_remote_one_keeps_it() -> None:
    local = member("2025-12-01T00:00:00Z", extra={"where": "local"})
    obj = merge(None, claim_for(WEB, link_for("east"), member(), local))
    assert obj is not None
    assert obj.annotations[labels.LOCAL_DISCOVERY] == "web"
    assert obj.annotations[labels.REMOTE_DISCOVERY] == "web@east"
    assert obj.labels["where"] == "local", "the local member is the oldest"
    only_local = merge(obj, claim_for(WEB, link_for("east"), None, local))
    assert only_local is not None
    assert labels.REMOTE_DISCOVERY not in only_local.annotations
    assert merge(only_local, claim_for(WEB, link_for("east"), None, None)) is None


def test_merge_never_copies_mirror_labels_topology_or_excluded_keys() -> None:
    lk = link_for("east")
    lk = replace(lk, excluded_labels=("secret/*",), excluded_annotations=("private",))
    svc = replace(
        member(extra={"secret/x": "1", "mirror.linkerd.io/exported": "true"}),
        annotations={"private": "1", labels.TOPOLOGY_ANNOTATIONS[0]: "auto", "keep": "yes"},
    )
    obj = merge(None, claim_for(WEB, lk, svc, None))
    assert obj is not None
    assert "secret/x" not in obj.labels
    assert "mirror.linkerd.io/exported" not in obj.labels
    assert "private" not in obj.annotations
    assert labels.TOPOLOGY_ANNOTATIONS[0] not in obj.annotations
    assert obj.annotations["keep"] == "yes"


def test_a_federated_service_is_recognised_and_never_mirrored_again() -> None:
    obj = merge(None, claim_for(WEB, link_for("east"), member(), None))
    assert obj is not None
    svc = Service("shop", "web-federated", labels=dict(obj.labels))
    assert is_federated(svc)
    assert is_mirror(svc)
    assert not is_federated(Service("shop", "web-federated"))


# -- one controller ---------------------------------------------------------------------------


class Cluster:
    """The local API server shared by several cores (one per Link), delivering watch events."""

    def __init__(self, *links: Link, local: tuple[Service, ...] = ()) -> None:
        self.services: dict[ObjectKey, Service] = {s.key: s for s in local}
        self.cores = {
            lk.target_cluster_name: MirrorCore(lk.name, clock=lambda: "t") for lk in links
        }
        self.remotes: dict[str, dict[ObjectKey, Service]] = {c: {} for c in self.cores}
        self.log: list[Command] = []
        self.rv = 0
        pending: list[Command] = []
        for lk in links:
            core = self.cores[lk.target_cluster_name]
            for ev in (
                LinkUpdated(lk, lk.gateway_addresses),
                LocalEvent(Listed(Service, tuple(self.services.values()))),
                LocalEvent(Listed(MirrorEndpoints, ())),
                LocalEvent(Listed(Namespace, (Namespace("shop"),))),
                RemoteEvent(Listed(EndpointSlice, ())),
                RemoteEvent(Listed(Service, ())),
            ):
                pending += self._feed(core, ev)
        self.settle(pending)

    def _feed(self, core: MirrorCore, event: Event) -> list[Command]:
        out = core.handle(event)
        self.log.extend(out)
        return out

    def _local(self, event: Any) -> list[Command]:
        out: list[Command] = []
        for core in self.cores.values():
            out += self._feed(core, LocalEvent(event))
        return out

    def settle(self, commands: list[Command]) -> None:
        done = 0
        while commands:
            done += len(commands)
            assert done < 300, f"the controllers keep rewriting each other: {commands[:6]}"
            more: list[Command] = []
            for c in commands:
                if isinstance(c, ApplyFederated):
                    self.rv += 1
                    old = self.services.get(c.claim.key)
                    new = apply_claim_to(old, c.claim, rv=str(self.rv))
                    if new is None and old is not None:
                        del self.services[c.claim.key]
                        more += self._local(Deleted(old))
                    elif new is not None and new is not old:
                        self.services[c.claim.key] = new
                        more += self._local(Upserted(new))
                elif isinstance(c, ApplyService | ApplyEndpoints):
                    raise AssertionError(f"a federated member must not be mirrored: {c}")
            commands = more

    def remote(self, cluster: str, svc: Service | None, name: str = "web") -> None:
        key = ObjectKey("shop", name)
        core = self.cores[cluster]
        if svc is None:
            old = self.remotes[cluster].pop(key)
            self.settle(self._feed(core, RemoteEvent(Deleted(old))))
        else:
            self.remotes[cluster][key] = svc
            self.settle(self._feed(core, RemoteEvent(Upserted(svc))))

    def local(self, svc: Service | None, name: str = "web") -> None:
        key = ObjectKey("shop", name)
        if svc is None:
            self.settle(self._local(Deleted(self.services.pop(key))))
        else:
            self.services[key] = svc
            self.settle(self._local(Upserted(svc)))

    def fed(self) -> Service | None:
        return self.services.get(FED)


def test_a_remote_member_produces_the_federated_service_without_endpoints() -> None:
    c = Cluster(link_for("east"))
    c.remote("east", member())
    fed = c.fed()
    assert fed is not None, f"no web-federated after a member appeared; commands: {c.log}"
    assert fed.annotations[labels.REMOTE_DISCOVERY] == "web@east"
    assert labels.LOCAL_DISCOVERY not in fed.annotations
    assert fed.ports == (ServicePort(80, "http", "TCP", 8080),)
    assert not [x for x in c.log if isinstance(x, ApplyEndpoints)], "no Endpoints, ever"
    before = len(c.log)
    c.remote("east", replace(member(), resource_version="101"))
    assert not [x for x in c.log[before:] if isinstance(x, ApplyFederated)], "nothing changed"
    c.remote("east", None)
    assert c.fed() is None, "the federated Service goes with its last member"


def test_two_and_three_clusters_and_a_local_member_share_one_object() -> None:
    c = Cluster(link_for("east"), link_for("west"), link_for("north"))
    c.remote("west", member("2026-02-01T00:00:00Z", extra={"v": "west"}))
    c.remote("east", member("2026-01-01T00:00:00Z", extra={"v": "east"}))
    c.remote("north", member("2026-03-01T00:00:00Z", extra={"v": "north"}))
    fed = c.fed()
    assert fed is not None
    assert fed.annotations[labels.REMOTE_DISCOVERY] == "web@east,web@north,web@west"
    assert fed.labels["v"] == "east", f"metadata not from the oldest member: {fed.labels}"
    c.local(member("2026-04-01T00:00:00Z", extra={"v": "local"}))
    fed = c.fed()
    assert fed is not None
    assert fed.annotations[labels.LOCAL_DISCOVERY] == "web"
    assert fed.labels["v"] == "east"
    c.remote("east", None)
    fed = c.fed()
    assert fed is not None
    assert fed.annotations[labels.REMOTE_DISCOVERY] == "web@north,web@west"
    assert fed.labels["v"] == "west", f"metadata did not move to the next oldest: {fed.labels}"
    c.remote("west", None)
    c.remote("north", None)
    fed = c.fed()
    assert fed is not None
    assert labels.REMOTE_DISCOVERY not in fed.annotations
    assert fed.labels["v"] == "local"
    c.local(None)
    assert c.fed() is None


def test_a_foreign_service_named_like_the_federated_one_is_never_touched() -> None:
    mine = Service("shop", "web-federated", labels={"app": "mine"})
    c = Cluster(link_for("east"), local=(mine,))
    c.remote("east", member())
    assert c.fed() is mine
    assert any(isinstance(x, RecordEvent) and x.reason == "NameConflict" for x in c.log)


def test_a_failed_federated_write_is_asked_again_on_retry() -> None:
    c = Cluster(link_for("east"))
    core = c.cores["east"]
    out = core.handle(RemoteEvent(Upserted(member())))
    assert [x for x in out if isinstance(x, ApplyFederated)]
    assert not core.handle(CommandFailed(FED, "boom"))
    again = core.handle(Retry((FED,)))
    assert [x for x in again if isinstance(x, ApplyFederated)], again


def test_gateway_exports_are_not_federated_unless_selected() -> None:
    c = Cluster(link_for("east"))
    core = c.cores["east"]
    out = core.handle(RemoteEvent(Upserted(remote_service("api"))))
    assert not [x for x in out if isinstance(x, ApplyFederated)]
    assert [x for x in out if isinstance(x, ApplyService)]


# -- the read-modify-write loop ---------------------------------------------------------------


def _conflict() -> ApiError:
    request = httpx2.Request("PUT", "https://example/api")
    response = httpx2.Response(
        409,
        json={"kind": "Status", "code": 409, "reason": "Conflict", "message": "rv"},
        request=request,
    )
    return ApiError(request=request, response=response)


class Store:
    """A local API server holding one Service; ``conflicts`` writes fail with 409 first."""

    def __init__(self, conflicts: int = 0) -> None:
        self.obj: core_v1.Service | None = None
        self.conflicts = conflicts
        self.rv = 0
        self.writes: list[str] = []

    async def get(self, ns: str, name: str) -> core_v1.Service | None:
        return core_v1.Service.from_dict(self.obj.to_dict()) if self.obj is not None else None  # type: ignore[no-any-return]

    def _write(self, what: str, obj: core_v1.Service | None) -> None:
        if self.conflicts:
            self.conflicts -= 1
            # Another controller wrote in between: its entry appears.
            other = Federated(annotations={labels.REMOTE_DISCOVERY: "web@west"})
            if self.obj is None:
                self.obj = core_v1.Service.from_dict(other.manifest("shop", "web-federated"))
            else:
                assert self.obj.metadata is not None
                self.obj.metadata.annotations = {
                    **(self.obj.metadata.annotations or {}),
                    labels.REMOTE_DISCOVERY: "web@west",
                }
            raise _conflict()
        self.rv += 1
        self.writes.append(what)
        if obj is not None:
            assert obj.metadata is not None
            obj.metadata.resourceVersion = str(self.rv)
        self.obj = obj

    async def create(self, obj: core_v1.Service) -> None:
        self._write("create", obj)

    async def replace(self, obj: core_v1.Service) -> None:
        self._write("replace", obj)

    async def delete(self, ns: str, name: str) -> None:
        self._write("delete", None)


def test_apply_claim_reads_again_on_conflict_and_keeps_the_other_clusters_entry() -> None:
    store = Store(conflicts=1)
    claim = claim_for(WEB, link_for("east"), member(), None)
    assert asyncio.run(apply_claim(store, claim)) == "updated"
    assert store.obj is not None
    assert store.obj.metadata is not None
    annotations = store.obj.metadata.annotations or {}
    assert annotations[labels.REMOTE_DISCOVERY] == "web@east,web@west"
    assert asyncio.run(apply_claim(store, claim)) == "unchanged"
    gone = claim_for(WEB, link_for("east"), None, None)
    assert asyncio.run(apply_claim(store, gone)) == "updated", "west is still a member"
    store.obj.metadata.annotations = {}
    assert asyncio.run(apply_claim(store, gone)) == "deleted"
    assert store.writes == ["replace", "replace", "delete"]


def test_apply_claim_gives_up_after_endless_conflicts() -> None:
    store = Store(conflicts=100)
    with pytest.raises(httpx2.HTTPError, match="conflicting"):
        asyncio.run(apply_claim(store, claim_for(WEB, link_for("east"), member(), None)))
