"""Remote discovery, scenario by scenario: Links and credentials in, sessions out; remote
clusters' objects in, endpoints of remote-discovery mirrors and federated services out."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
import yaml

from mesh.destination import (
    Add,
    Address,
    DestinationWatcher,
    NoEndpoints,
    Remove,
    WeightedEndpoint,
)
from mesh.destination.authority import IpTarget, ServiceTarget
from mesh.destination.remote import (
    ClusterLinked,
    ClusterNotFound,
    Connect,
    Credentials,
    Disconnect,
    LinkCredentials,
    LinkedCluster,
    LinksListed,
    RemoteObjects,
    RemoteTrustDomain,
    RemoteUnreachable,
)
from mesh.destination.remote_endpoints import Member, RemoteMissing, remote_spec
from mesh.destination.watcher import Changes, RemoteClusterNotFound
from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.objects import EndpointSlice, Pod, Service
from tests.destination.support import CONFIG, NS, endpoint, pod, service, slice_of
from tests.pem import self_signed_ca_pem

CA = self_signed_ca_pem()
WEST = LinkedCluster("west", "west", "west.example", "cluster-credentials-west")
EAST = LinkedCluster("east", "east", "east.example", "cluster-credentials-east")
REMOTE_TD = "west-trust.example"


def kubeconfig(server: str = "https://172.30.21.5:6443", token: str = "tok") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "clusters": [
                {
                    "name": "c",
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(CA.encode()).decode(),
                    },
                }
            ],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": token}}],
        }
    )


def creds(link: LinkedCluster, **kw: str) -> Credentials:
    return Credentials(link.credentials_secret, kubeconfig=kubeconfig(**kw))


# -- LinkCredentials ------------------------------------------------------------------------


def listed(
    core: LinkCredentials, links: tuple[LinkedCluster, ...], secrets: tuple[Credentials, ...]
):
    first = core.apply(Listed(LinkedCluster, links))
    assert first == [], "nothing is decided before Secrets are listed too"
    return core.apply(Listed(Credentials, secrets))


def test_a_link_with_usable_credentials_is_watched_once() -> None:
    core = LinkCredentials()
    out = listed(core, (WEST,), (creds(WEST),))
    connect = [o for o in out if isinstance(o, Connect)]
    assert [c.cluster for c in connect] == ["west"]
    assert connect[0].remote.server == "https://172.30.21.5:6443"
    assert ClusterLinked("west", connect[0].session, "west.example") in out
    assert out[-1] == LinksListed()
    # the same Link and Secret again: no new session
    assert core.apply(Upserted(WEST)) == []
    assert core.apply(Upserted(creds(WEST))) == []


def test_missing_or_broken_credentials_make_the_cluster_not_found() -> None:
    core = LinkCredentials()
    out = listed(
        core, (WEST, EAST), (creds(WEST), Credentials(EAST.credentials_secret, problem="no key"))
    )
    assert any(isinstance(o, Connect) and o.cluster == "west" for o in out)
    (east,) = [o for o in out if isinstance(o, ClusterNotFound)]
    assert east.cluster == "east"
    assert "no key" in east.reason
    # a kubeconfig that does not parse is broken too
    out = core.apply(Upserted(Credentials(EAST.credentials_secret, kubeconfig="clusters: 3")))
    (east,) = out
    assert isinstance(east, ClusterNotFound)
    assert "unusable kubeconfig" in east.reason
    # deleting the west Secret stops its session and reports it missing
    session = core._active["west"].session
    out = core.apply(Deleted(creds(WEST)))
    assert out[0] == Disconnect("west", session)
    assert isinstance(out[1], ClusterNotFound)
    assert "missing" in out[1].reason


def test_rotated_credentials_replace_the_session_and_unlink_stops_it() -> None:
    core = LinkCredentials()
    out = listed(core, (WEST,), (creds(WEST),))
    (first,) = [o for o in out if isinstance(o, Connect)]
    out = core.apply(Upserted(creds(WEST, token="rotated")))
    assert out[0] == Disconnect("west", first.session)
    assert isinstance(out[1], ClusterLinked)
    assert out[1].session > first.session
    assert isinstance(out[2], Connect)
    assert out[2].remote.token == "rotated"
    out = core.apply(Deleted(WEST))
    assert out == [
        Disconnect("west", out[0].session),
        ClusterNotFound("west", "no Link targets it"),
    ]


def test_two_links_naming_one_cluster_watch_it_once() -> None:
    other = replace(WEST, link="a-west")
    core = LinkCredentials()
    out = listed(core, (WEST, other), (creds(WEST),))
    assert [o.cluster for o in out if isinstance(o, Connect)] == ["west"]


# -- the discovery core -------------------------------------------------------------------------

BB = service("bb", cluster_ip="10.110.0.7")
BB_POD = pod("bb-1", "10.112.0.9", sa="bb")
MIRROR = Service(
    namespace=NS,
    name="bb-west",
    ports=BB.ports,
    cluster_ip="10.101.0.44",
    cluster_ips=("10.101.0.44",),
    labels={
        "mirror.linkerd.io/mirrored-service": "true",
        "mirror.linkerd.io/cluster-name": "west",
        "multicluster.linkerd.io/remote-discovery": "west",
        "multicluster.linkerd.io/remote-service": "bb",
    },
)
TARGET = ServiceTarget(NS, "bb-west", 80, "east.example")


def remote_endpoint(
    p: Pod, cluster: str = "west", service_name: str = "bb-west"
) -> WeightedEndpoint:
    return WeightedEndpoint(
        Address(p.ip, 8080),
        labels={
            "namespace": NS,
            "service": service_name,
            "pod": p.name,
            "serviceaccount": p.service_account,
            "pod_template_hash": "5d8f7c9b4",
            "deployment": "web",
            "target_cluster": cluster,
            "target_service": "bb",
            "target_service_namespace": NS,
        },
        identity=f"{p.service_account}.{NS}.serviceaccount.identity.linkerd.{REMOTE_TD}",
    )


def watcher(*local: Service) -> DestinationWatcher:
    w = DestinationWatcher(CONFIG)
    w.apply(Listed(Service, (MIRROR, *local)))
    w.apply(Listed(EndpointSlice, ()))
    w.apply(Listed(Pod, ()))
    return w


def link_west(
    w: DestinationWatcher, session: int = 1, *, pods: tuple[Pod, ...] = (BB_POD,)
) -> None:
    w.apply(ClusterLinked("west", session, "west.example"))
    w.apply(LinksListed())
    w.apply(RemoteTrustDomain("west", session, REMOTE_TD))
    w.apply(RemoteObjects("west", session, Listed(Service, (BB,))))
    w.apply(
        RemoteObjects(
            "west", session, Listed(EndpointSlice, (slice_of(BB, [endpoint(p) for p in pods]),))
        )
    )
    w.apply(RemoteObjects("west", session, Listed(Pod, pods)))


def test_a_remote_discovery_mirror_resolves_to_the_remote_pods_with_their_identity() -> None:
    w = watcher()
    link_west(w)
    sub, first = w.watch_endpoints(TARGET)
    assert first == [Add((remote_endpoint(BB_POD),), {"namespace": NS, "service": "bb-west"})]
    # by the mirror's cluster IP too (a proxy's original destination)
    _, by_ip = w.watch_endpoints(IpTarget("10.101.0.44", 80))
    assert by_ip == first
    # a remote pod scaled up reaches the subscriber
    second = pod("bb-2", "10.112.0.10", sa="bb")
    w.apply(RemoteObjects("west", 1, Upserted(second)))
    changes = w.apply(
        RemoteObjects("west", 1, Upserted(slice_of(BB, [endpoint(BB_POD), endpoint(second)])))
    )
    assert changes.endpoints[sub] == [
        Add((remote_endpoint(second),), {"namespace": NS, "service": "bb-west"})
    ]


def test_local_endpoints_of_a_remote_discovery_mirror_are_ignored() -> None:
    w = watcher()
    gateway_slice = replace(slice_of(MIRROR, []), name="bb-west-x")
    w.apply(Upserted(gateway_slice))
    link_west(w)
    _, first = w.watch_endpoints(TARGET)
    assert isinstance(first[0], Add)
    assert [e.address.ip for e in first[0].endpoints] == [BB_POD.ip]


def test_a_cluster_without_credentials_is_not_found_at_once() -> None:
    w = watcher()
    w.apply(
        ClusterNotFound(
            "west", "Link west's credentials Secret cluster-credentials-west is missing"
        )
    )
    w.apply(LinksListed())
    with pytest.raises(RemoteClusterNotFound, match="remote cluster not found: west"):
        w.watch_endpoints(TARGET)
    # no Link at all says so too
    other = replace(
        MIRROR,
        name="x-north",
        labels={**MIRROR.labels, "multicluster.linkerd.io/remote-discovery": "north"},
    )
    w.apply(Upserted(other))
    with pytest.raises(RemoteClusterNotFound, match=r"north \(no Link targets it"):
        w.watch_endpoints(ServiceTarget(NS, "x-north", 80, "east.example"))


def test_before_links_are_listed_a_mirror_has_no_endpoints_yet() -> None:
    w = watcher()
    sub, first = w.watch_endpoints(TARGET)
    assert first == [NoEndpoints(exists=True)]
    w.apply(ClusterLinked("west", 1, "west.example"))
    changes = w.apply(LinksListed())
    assert sub not in changes.endpoints  # linked, still listing: still empty
    w.apply(RemoteTrustDomain("west", 1, REMOTE_TD))
    w.apply(RemoteObjects("west", 1, Listed(Service, (BB,))))
    w.apply(RemoteObjects("west", 1, Listed(EndpointSlice, (slice_of(BB, [endpoint(BB_POD)]),))))
    changes = w.apply(RemoteObjects("west", 1, Listed(Pod, (BB_POD,))))
    assert changes.endpoints[sub] == [
        Add((remote_endpoint(BB_POD),), {"namespace": NS, "service": "bb-west"})
    ]


def test_an_api_server_that_goes_away_keeps_the_last_endpoints_and_recovers() -> None:
    w = watcher()
    link_west(w)
    sub, _ = w.watch_endpoints(TARGET)
    assert not w.apply(RemoteUnreachable("west", 1, "ConnectError: refused"))
    _, again = w.watch_endpoints(TARGET)
    assert isinstance(again[0], Add), "last known endpoints stay in use"
    second = pod("bb-2", "10.112.0.10", sa="bb")
    w.apply(RemoteObjects("west", 1, Listed(Pod, (BB_POD, second))))
    changes = w.apply(
        RemoteObjects("west", 1, Listed(EndpointSlice, (slice_of(BB, [endpoint(second)]),)))
    )
    updates = changes.endpoints[sub]
    assert [type(u).__name__ for u in updates] == ["Remove", "Add"]


def test_an_api_server_unreachable_from_the_start_is_not_found_then_found() -> None:
    w = watcher()
    w.apply(ClusterLinked("west", 1, "west.example"))
    w.apply(LinksListed())
    w.apply(RemoteUnreachable("west", 1, "401 Unauthorized"))
    with pytest.raises(RemoteClusterNotFound, match="unreachable: 401"):
        w.watch_endpoints(TARGET)
    link_west(w)
    _, first = w.watch_endpoints(TARGET)
    assert isinstance(first[0], Add)


def test_events_of_a_superseded_session_are_ignored() -> None:
    w = watcher()
    link_west(w, session=1)
    w.apply(ClusterLinked("west", 2, "west.example"))
    sub, _ = w.watch_endpoints(TARGET)
    changes = w.apply(RemoteObjects("west", 1, Listed(EndpointSlice, ())))
    assert not changes
    changes = w.apply(RemoteObjects("west", 2, Listed(EndpointSlice, ())))
    assert changes.endpoints[sub] == [NoEndpoints(exists=True)]


def test_unlinking_during_a_stream_ends_it_not_found() -> None:
    w = watcher()
    link_west(w)
    sub, _ = w.watch_endpoints(TARGET)
    changes = w.apply(ClusterNotFound("west", "no Link targets it"))
    assert changes.not_found == {sub: "remote cluster not found: west (no Link targets it)"}
    assert changes.endpoints[sub] == [NoEndpoints(exists=False)], "emptied before it ends"
    # told once: a later event changes nothing for it
    later = w.apply(LinksListed())
    assert sub not in later.not_found
    assert sub not in later.endpoints


def feed_credentials(w: DestinationWatcher, core: LinkCredentials, event: object) -> list[object]:
    """What the credentials core says about ``event``, passed on to the watcher."""
    out = core.apply(event)  # type: ignore[arg-type]
    said: list[object] = []
    for o in out:
        if not isinstance(o, Connect | Disconnect):
            said.append(w.apply(o))
    return said


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("Secret deleted", "cluster-credentials-west is missing"),
        ("key removed", "unusable: it has no key"),
        ("kubeconfig garbage", "unusable kubeconfig"),
        ("Link deleted", "no Link targets it"),
    ],
)
def test_a_stream_is_emptied_and_ended_when_its_credentials_break(how: str, reason: str) -> None:
    """The credentials core and the discovery core together: the stream of a proxy that was
    already streaming gets ``NoEndpoints`` then ends, and a new lookup fails (CONF-26)."""
    w = watcher()
    core = LinkCredentials()
    for o in listed(core, (WEST,), (creds(WEST),)):
        if not isinstance(o, Connect):
            w.apply(o)
    session = core._active["west"].session
    w.apply(RemoteTrustDomain("west", session, REMOTE_TD))
    w.apply(RemoteObjects("west", session, Listed(Service, (BB,))))
    w.apply(
        RemoteObjects("west", session, Listed(EndpointSlice, (slice_of(BB, [endpoint(BB_POD)]),)))
    )
    w.apply(RemoteObjects("west", session, Listed(Pod, (BB_POD,))))
    sub, first = w.watch_endpoints(TARGET)
    assert isinstance(first[0], Add)
    event: object = {
        "Secret deleted": Deleted(creds(WEST)),
        "key removed": Upserted(Credentials(WEST.credentials_secret, problem="it has no key")),
        "kubeconfig garbage": Upserted(Credentials(WEST.credentials_secret, kubeconfig="a: [")),
        "Link deleted": Deleted(WEST),
    }[how]
    said = feed_credentials(w, core, event)
    ended = [c for c in said if isinstance(c, Changes) and sub in c.not_found]
    assert len(ended) == 1, f"{how}: expected the stream to end once; the watcher said {said}"
    assert ended[0].endpoints[sub] == [NoEndpoints(exists=False)], f"{how}: not emptied first"
    assert reason in ended[0].not_found[sub], ended[0].not_found[sub]
    with pytest.raises(RemoteClusterNotFound, match=reason):
        w.watch_endpoints(TARGET)


def test_credentials_refused_by_the_remote_end_the_stream_until_they_list_again() -> None:
    w = watcher()
    link_west(w)
    sub, _ = w.watch_endpoints(TARGET)
    changes = w.apply(RemoteUnreachable("west", 1, "401 Unauthorized: token revoked", True))
    assert changes.endpoints[sub] == [NoEndpoints(exists=False)]
    assert "refuses the credentials: 401" in changes.not_found[sub]
    assert not w.apply(RemoteUnreachable("west", 1, "401 Unauthorized", True)), "said once"
    with pytest.raises(RemoteClusterNotFound, match="refuses the credentials"):
        w.watch_endpoints(TARGET)
    assert w.remotes.clusters()["west"].startswith("credentials refused")
    # credentials fixed: the session lists again and lookups are answered
    changes = w.apply(RemoteObjects("west", 1, Listed(Pod, (BB_POD,))))
    assert [type(u) for u in changes.endpoints[sub]] == [Add], changes
    _, again = w.watch_endpoints(TARGET)
    assert isinstance(again[0], Add)


def test_a_federated_member_whose_credentials_break_leaves_the_stream() -> None:
    """The other members still serve: the stream goes on without that member's endpoints."""
    local_bb = service("bb", cluster_ip="10.101.0.9")
    local_pod = pod("bb-local", "10.102.0.3", sa="bb")
    w = watcher(federated("bb@west", local="bb"), local_bb)
    w.apply(Listed(EndpointSlice, (slice_of(local_bb, [endpoint(local_pod)]),)))
    w.apply(Listed(Pod, (local_pod,)))
    link_west(w)
    sub, _ = w.watch_endpoints(ServiceTarget(NS, "bb-federated", 80, "east.example"))
    changes = w.apply(ClusterNotFound("west", "Secret cluster-credentials-west is missing"))
    assert sub not in changes.not_found
    assert changes.endpoints[sub] == [Remove((Address(BB_POD.ip, 8080),))]


def test_without_a_remote_trust_domain_the_local_one_is_assumed() -> None:
    w = watcher()
    w.apply(ClusterLinked("west", 1, "west.example"))
    w.apply(LinksListed())
    w.apply(RemoteObjects("west", 1, Listed(Service, (BB,))))
    w.apply(RemoteObjects("west", 1, Listed(EndpointSlice, (slice_of(BB, [endpoint(BB_POD)]),))))
    w.apply(RemoteObjects("west", 1, Listed(Pod, (BB_POD,))))
    _, (add,) = w.watch_endpoints(TARGET)
    assert isinstance(add, Add)
    assert add.endpoints[0].identity == "bb.shop.serviceaccount.identity.linkerd.mesh.example"


# -- federated services -------------------------------------------------------------------------


def federated(members: str, local: str | None = None) -> Service:
    annotations = {"multicluster.linkerd.io/remote-discovery": members}
    if local:
        annotations["multicluster.linkerd.io/local-discovery"] = local
    return Service(
        namespace=NS,
        name="bb-federated",
        ports=BB.ports,
        cluster_ip="10.101.0.50",
        cluster_ips=("10.101.0.50",),
        labels={"mirror.linkerd.io/mirrored-service": "true"},
        annotations=annotations,
    )


def test_spec_parsing() -> None:
    assert remote_spec(MIRROR) is not None
    assert remote_spec(MIRROR).members == (Member("bb", "west"),)
    spec = remote_spec(federated("bb@west, bb@east,junk,@x", local="bb"))
    assert spec is not None
    assert spec.members == (Member("bb", "west"), Member("bb", "east"))
    assert spec.local == "bb"
    assert spec.federated
    assert remote_spec(BB) is None


def test_a_federated_service_unites_every_member_and_skips_missing_ones() -> None:
    local_bb = service("bb", cluster_ip="10.101.0.9")
    local_pod = pod("bb-local", "10.102.0.3", sa="bb")
    w = watcher(federated("bb@west,bb@north", local="bb"), local_bb)
    w.apply(Listed(EndpointSlice, (slice_of(local_bb, [endpoint(local_pod)]),)))
    w.apply(Listed(Pod, (local_pod,)))
    link_west(w)
    w.apply(ClusterNotFound("north", "no Link targets it"))
    _, (add,) = w.watch_endpoints(ServiceTarget(NS, "bb-federated", 80, "east.example"))
    assert isinstance(add, Add)
    by_ip = {e.address.ip: e for e in add.endpoints}
    assert set(by_ip) == {BB_POD.ip, local_pod.ip}
    assert by_ip[BB_POD.ip] == remote_endpoint(BB_POD, service_name="bb-federated")
    assert by_ip[local_pod.ip].identity == "bb.shop.serviceaccount.identity.linkerd.mesh.example"
    assert "target_cluster" not in by_ip[local_pod.ip].labels


def test_missing_reason_reads_like_linkerd() -> None:
    assert RemoteMissing("west", "x").message == "remote cluster not found: west (x)"
