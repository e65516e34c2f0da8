"""A Link that goes takes its ``svc@cluster`` entries out of every federated Service (CONF-28):
the prune rule as a table, the cores of several Links, and the read-modify-write loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx2
import pytest
from lightkube.resources import core_v1

from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.objects import ObjectKey, Service, ServicePort
from mesh.multicluster import labels
from mesh.multicluster.mirror.admin import MirrorMetrics
from mesh.multicluster.mirror.controller import MirrorController
from mesh.multicluster.mirror.federated import (
    FROM_ANNOTATION,
    Federated,
    Prune,
    apply,
    leftovers,
    link_target,
    prune,
)
from mesh.multicluster.mirror.kube import apply_claim
from mesh.multicluster.mirror.messages import (
    ApplyFederated,
    Command,
    CommandFailed,
    LinkInvalid,
    LinksChanged,
    LinkUpdated,
    LocalEvent,
    Namespace,
    Retry,
)
from tests.multicluster.fakes import FakeLocal, FakeProber, FakeRemote, IdentityResolver, LocalSeam
from tests.multicluster.mirror_support import link_obj
from tests.multicluster.test_mirror_controller import FAST, eventually, kubeconfig
from tests.multicluster.test_mirror_federated import (
    FED,
    Cluster,
    Store,
    _conflict,
    link_for,
    member,
)

PORTS = (ServicePort(80, "http", "TCP", 8080),)


def fed(
    remote: str = "",
    local: str = "",
    owner: str = "",
    extra: Mapping[str, str] | None = None,
) -> Federated:
    annotations = dict(extra or {})
    if remote:
        annotations[labels.REMOTE_DISCOVERY] = remote
    if local:
        annotations[labels.LOCAL_DISCOVERY] = local
    if owner:
        annotations[FROM_ANNOTATION] = f"2026-01-01T00:00:00Z {owner}"
    return Federated({labels.MIRRORED_SERVICE: "true", "app": "web"}, annotations, PORTS)


# -- the rule ---------------------------------------------------------------------------------

PRUNE_TABLE = [
    # (remote-discovery, local-discovery, linked clusters, expected remote, expected local)
    ("web@c1,web@c2", "", {"c2"}, "web@c2", ""),
    ("web@c1,web@c2", "", {"c1"}, "web@c1", ""),
    ("web@c1,web@c2,web@c3", "", {"c1", "c3"}, "web@c1,web@c3", ""),
    ("web@c1", "web", {"c2"}, "", "web"),
    ("web@c1,web@c2", "web", {"c2"}, "web@c2", "web"),
    ("web@c1", "web", set(), None, None),
    ("web@c1", "", {"c2"}, None, None),
    ("", "web", set(), None, None),
]


@pytest.mark.parametrize(("remote", "local", "linked", "want_remote", "want_local"), PRUNE_TABLE)
def test_prune_drops_only_the_entries_of_clusters_no_link_targets(
    remote: str,
    local: str,
    linked: set[str],
    want_remote: str | None,
    want_local: str | None,
) -> None:
    before = fed(remote, local, extra={"team": "shop"})
    after = prune(before, frozenset(linked))
    if want_remote is None:
        assert after is None, f"members {remote!r}/{local!r} with Links {linked}: expected deleted"
        return
    assert after is not None, f"members {remote!r}/{local!r} with Links {linked}: deleted"
    assert after.annotations.get(labels.REMOTE_DISCOVERY, "") == want_remote
    assert after.annotations.get(labels.LOCAL_DISCOVERY, "") == want_local
    assert after.annotations["team"] == "shop", "other annotations are kept"
    assert after.labels == before.labels
    assert after.ports == before.ports


def test_prune_with_nothing_stale_returns_the_object_itself() -> None:
    before = fed("web@c1,web@c2", "web", owner="web@c1")
    assert prune(before, frozenset({"c1", "c2", "c3"})) is before
    assert apply(before, Prune("shop", "web", frozenset({"c1", "c2"}))) is before
    assert apply(None, Prune("shop", "web", frozenset())) is None, "nothing to prune"


def test_prune_clears_the_metadata_record_of_a_pruned_owner_only() -> None:
    owned_by_c1 = prune(fed("web@c1,web@c2", owner="web@c1"), frozenset({"c2"}))
    assert owned_by_c1 is not None
    assert FROM_ANNOTATION not in owned_by_c1.annotations, "the remaining members reclaim it"
    owned_by_c2 = prune(fed("web@c1,web@c2", owner="web@c2"), frozenset({"c2"}))
    assert owned_by_c2 is not None
    assert owned_by_c2.annotations[FROM_ANNOTATION].endswith(" web@c2")
    owned_locally = prune(fed("web@c1", "web", owner="web"), frozenset({"c2"}))
    assert owned_locally is not None
    assert owned_locally.annotations[FROM_ANNOTATION].endswith(" web")


def _manifest(name: str, service_labels: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "shop", "labels": service_labels}}


def test_link_targets_are_read_leniently() -> None:
    ok = {"metadata": {"name": "to-east"}, "spec": {"targetClusterName": "east"}}
    assert link_target(ok) == ("to-east", "east")
    assert link_target({"metadata": {"name": "north"}, "spec": 3}) == ("north", "north")
    assert link_target({"metadata": {"name": "x"}, "spec": {"targetClusterName": ""}}) == (
        "x",
        "x",
    )


def test_unlink_leftovers_are_every_federated_service_only_when_no_other_link_is_left() -> None:
    mirrored = {labels.MIRRORED_SERVICE: "true"}
    services = [
        _manifest("web-federated", mirrored),
        _manifest("web-east", {**mirrored, labels.CLUSTER_NAME: "east"}),
        _manifest("other-federated", {"app": "mine"}),
    ]
    east = {"metadata": {"name": "east"}, "spec": {"targetClusterName": "east"}}
    north = {"metadata": {"name": "north"}, "spec": {"targetClusterName": "north"}}
    assert leftovers(services, [east], "east") == [services[0]]
    assert leftovers(services, [], "east") == [services[0]], "the Link was deleted already"
    assert leftovers(services, [east, north], "east") == [], "north's controller prunes"


# -- several Links' cores -----------------------------------------------------------------------


class Linked(Cluster):
    """``Cluster`` whose cores also hear the Links of the namespace come and go."""

    def __init__(self, *clusters: str, local: tuple[Service, ...] = ()) -> None:
        super().__init__(*(link_for(c) for c in clusters), local=local)
        self.linked = frozenset(clusters)
        self.links(*clusters)

    def links(self, *clusters: str) -> None:
        self.linked = frozenset(clusters)
        pending: list[Command] = []
        for core in self.cores.values():
            pending += self._feed(core, LinksChanged(frozenset(clusters)))
        self.settle(pending)

    def delete_link(self, cluster: str, *, controller_running: bool) -> None:
        """The Link of ``cluster`` goes; its controller first stops unless told otherwise."""
        remaining = self.linked - {cluster}
        self.linked = remaining
        gone = self.cores.pop(cluster)
        pending: list[Command] = []
        if controller_running:  # its Link watch says both at once, in this order
            pending += self._feed(gone, LinksChanged(remaining))
            pending += self._feed(gone, LinkInvalid("LinkNotFound", f"Link {cluster} deleted"))
        # else: unlink deleted the controller before the Link
        for core in self.cores.values():
            pending += self._feed(core, LinksChanged(remaining))
        if controller_running:
            self.cores[cluster] = gone
        self.settle(pending)

    def members(self) -> tuple[str, str] | None:
        svc = self.fed()
        if svc is None:
            return None
        a = svc.annotations
        return a.get(labels.REMOTE_DISCOVERY, ""), a.get(labels.LOCAL_DISCOVERY, "")


@pytest.mark.parametrize("controller_running", [True, False], ids=["delete-link", "unlink"])
def test_a_deleted_link_leaves_and_the_other_links_entries_stay(controller_running: bool) -> None:
    c = Linked("c1", "c2", "c3")
    c.remote("c1", member("2026-01-01T00:00:00Z", extra={"v": "c1"}))
    c.remote("c2", member("2026-02-01T00:00:00Z", extra={"v": "c2"}))
    c.remote("c3", member("2026-03-01T00:00:00Z", extra={"v": "c3"}))
    assert c.members() == ("web@c1,web@c2,web@c3", "")
    c.delete_link("c1", controller_running=controller_running)
    assert c.members() == ("web@c2,web@c3", ""), f"after Link c1 went: {c.members()}"
    svc = c.fed()
    assert svc is not None
    assert svc.labels["v"] == "c2", f"metadata did not move to the next oldest: {svc.labels}"
    assert svc.annotations[FROM_ANNOTATION].endswith(" web@c2")
    before = len(c.log)
    c.remote("c2", member("2026-02-01T00:00:00Z", extra={"v": "c2", "more": "1"}))
    writes = [x for x in c.log[before:] if isinstance(x, ApplyFederated)]
    assert writes, "the remaining controllers still merge their members"
    assert c.members() == ("web@c2,web@c3", ""), "c1's entry never comes back"


@pytest.mark.parametrize("controller_running", [True, False], ids=["delete-link", "unlink"])
def test_the_last_links_entry_goes_with_the_object(controller_running: bool) -> None:
    c = Linked("c1", "c2")
    c.remote("c1", member())
    assert c.members() == ("web@c1", "")
    c.delete_link("c1", controller_running=controller_running)
    assert c.fed() is None, f"web-federated outlived its last member: {c.members()}"


def test_a_local_member_keeps_the_object_while_another_link_exists() -> None:
    c = Linked("c1", "c2", local=(member("2026-05-01T00:00:00Z", extra={"v": "local"}),))
    c.remote("c1", member())
    assert c.members() == ("web@c1", "web")
    c.delete_link("c1", controller_running=True)
    assert c.members() == ("", "web")
    c.delete_link("c2", controller_running=True)
    assert c.fed() is None, "with no Link left, nobody stands for the local member"


def test_only_the_deleted_links_entries_go_across_namespaces_and_services() -> None:
    c = Linked("c1", "c2")
    for cluster in ("c1", "c2"):
        c.remote(cluster, member())
        c.remote(cluster, member(name="api"), name="api")
    c.delete_link("c2", controller_running=False)
    web, api = c.services[FED], c.services[ObjectKey("shop", "api-federated")]
    assert web.annotations[labels.REMOTE_DISCOVERY] == "web@c1"
    assert api.annotations[labels.REMOTE_DISCOVERY] == "api@c1"


def test_a_link_recreated_claims_its_entry_again() -> None:
    c = Linked("c1", "c2")
    c.remote("c1", member())
    c.remote("c2", member())
    c.delete_link("c2", controller_running=True)
    assert c.members() == ("web@c1", "")
    c.links("c1", "c2")
    core = c.cores["c2"]
    lk = link_for("c2")
    c.settle(c._feed(core, LinkUpdated(lk, lk.gateway_addresses)))
    assert c.members() == ("web@c1,web@c2", "")


def test_nothing_is_pruned_before_the_links_are_listed() -> None:
    c = Cluster(link_for("c1"))
    c.remote("c1", member())
    stale = Service(
        "shop",
        "api-federated",
        labels={labels.MIRRORED_SERVICE: "true"},
        annotations={labels.REMOTE_DISCOVERY: "api@gone"},
        resource_version="7",
    )
    core = c.cores["c1"]
    out = core.handle(LocalEvent(Upserted(stale)))
    assert not [x for x in out if isinstance(x, ApplyFederated)], out
    out = core.handle(LinksChanged(frozenset({"c1"})))
    prunes = [x.claim for x in out if isinstance(x, ApplyFederated)]
    assert prunes == [Prune("shop", "api", frozenset({"c1"}))], out


def test_a_failed_prune_is_asked_again_on_retry_only() -> None:
    c = Linked("c1", "c2")
    c.remote("c1", member())
    c.remote("c2", member())
    core = c.cores["c1"]
    out = core.handle(LinksChanged(frozenset({"c1"})))
    assert [x for x in out if isinstance(x, ApplyFederated)], out
    assert not core.handle(CommandFailed(FED, "boom"))
    assert not core.handle(LinksChanged(frozenset({"c1"}))), "asked already; not twice"
    again = core.handle(Retry((FED,)))
    assert [x.claim for x in again if isinstance(x, ApplyFederated)] == [
        Prune("shop", "web", frozenset({"c1"}))
    ]


def test_a_federated_service_deleted_meanwhile_needs_no_prune() -> None:
    c = Linked("c1", "c2")
    c.remote("c2", member())
    core = c.cores["c1"]
    svc = c.fed()
    assert svc is not None
    core.handle(LocalEvent(Deleted(svc)))
    assert not core.handle(LinksChanged(frozenset({"c1"})))
    assert not core.handle(LocalEvent(Listed(Service, ())))


# -- the read-modify-write loop -------------------------------------------------------------


class RacingStore(Store):
    """A ``Store`` where another controller adds ``web@west`` before each of the first
    ``conflicts`` writes, which therefore fail with 409."""

    def _write(self, what: str, obj: core_v1.Service | None) -> None:
        if self.conflicts and self.obj is not None and self.obj.metadata is not None:
            self.conflicts -= 1
            annotations = dict(self.obj.metadata.annotations or {})
            members = annotations.get(labels.REMOTE_DISCOVERY, "").split(",")
            annotations[labels.REMOTE_DISCOVERY] = ",".join(sorted({*members, "web@west"} - {""}))
            self.obj.metadata.annotations = annotations
            raise _conflict()
        super()._write(what, obj)


def test_a_prune_reads_again_on_conflict_and_keeps_what_another_controller_wrote() -> None:
    store = RacingStore(conflicts=2)
    store.obj = core_v1.Service.from_dict(fed("web@east,web@north").manifest("shop", FED.name))
    gone_east = Prune("shop", "web", frozenset({"north", "west"}))
    assert asyncio.run(apply_claim(store, gone_east)) == "updated"
    assert store.obj is not None
    assert store.obj.metadata is not None
    annotations = store.obj.metadata.annotations or {}
    assert annotations[labels.REMOTE_DISCOVERY] == "web@north,web@west"
    assert asyncio.run(apply_claim(store, gone_east)) == "unchanged"
    assert asyncio.run(apply_claim(store, Prune("shop", "web", frozenset()))) == "deleted"
    assert store.writes == ["replace", "delete"]


def test_a_prune_that_keeps_conflicting_is_reported_failed() -> None:
    store = RacingStore(conflicts=100)
    store.obj = core_v1.Service.from_dict(fed("web@east").manifest("shop", FED.name))
    with pytest.raises(httpx2.HTTPError, match="conflicting"):
        asyncio.run(apply_claim(store, Prune("shop", "web", frozenset({"west"}))))


# -- through the controller's asyncio layer -------------------------------------------------


async def test_the_controller_prunes_as_the_links_it_watches_go() -> None:
    """Links in the namespace are read leniently: an unusable one still keeps its entries."""
    local, remote = FakeLocal(), FakeRemote()
    local.namespaces.put("shop", Namespace("shop"))
    local.secrets["cluster-credentials-east"] = kubeconfig()
    remote.export(member())
    east = link_obj()
    east["spec"]["selector"] = {"matchLabels": {"nothing": "exported"}}
    west = link_obj(targetClusterName="west")
    west["metadata"]["name"] = "to-west"
    north = {"metadata": {"name": "north", "namespace": "linkerd-multicluster"}, "spec": 3}
    for name, obj in (("east", east), ("to-west", west), ("north", north)):
        local.links.put(name, obj)
    stale = fed("web@north,web@west", owner="web@west")
    local.services.put(
        FED,
        Service(
            "shop",
            FED.name,
            labels=dict(stale.labels),
            annotations=dict(stale.annotations),
            resource_version="1",
        ),
    )
    controller = MirrorController(
        "east",
        LocalSeam(local),
        remote,
        MirrorMetrics("east"),
        prober=FakeProber(200),
        resolver=IdentityResolver(),
        settings=FAST,
    )
    task = asyncio.create_task(controller.run())

    def members() -> str | None:
        svc = local.mirror("shop", FED.name)
        return None if svc is None else svc.annotations.get(labels.REMOTE_DISCOVERY, "")

    try:
        await eventually("east's entry merged", lambda: members() == "web@east,web@north,web@west")
        local.links.delete("to-west")
        await eventually("west's entry pruned", lambda: members() == "web@east,web@north")
        local.links.delete("east")
        await eventually("our own entry pruned", lambda: members() == "web@north")
        local.links.delete("north")
        await eventually("the object deleted with its last entry", lambda: members() is None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
