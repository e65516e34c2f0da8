"""Port subscriptions: what each open stream is sent as the cluster changes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.objects import Pod
from mesh.policy import (
    ALL_NETWORKS,
    Authorization,
    InboundServer,
    PodGone,
    PodNotFound,
    PolicySnapshot,
    PolicyWatcher,
    PortTarget,
    Protocol,
    Ref,
    TargetError,
    TlsAuthenticated,
)
from mesh.policy.resources import MeshTLSAuthentication, Namespace
from mesh.policy.snapshot import KINDS
from tests.policy.support import (
    CONFIG,
    default,
    identity,
    meshtls,
    namespace,
    pod,
    policy,
    ref,
    server,
)

WEB = pod()
TARGET = PortTarget("shop", "web-0", 8080)
POLICY = "config.linkerd.io/default-inbound-policy"


def watcher() -> PolicyWatcher:
    return PolicyWatcher(CONFIG, PolicySnapshot.of([WEB, namespace(), pod("other-0", ns="other")]))


@pytest.mark.parametrize(
    ("workload", "port", "expected"),
    [
        ("shop:web-0", 8080, PortTarget("shop", "web-0", 8080)),
        ("shop:web-0", 65535, PortTarget("shop", "web-0", 65535)),
        ('{"ns": "shop", "pod": "web-0"}', 65535, PortTarget("shop", "web-0", 65535)),
    ],
)
def test_targets_parse(workload: str, port: int, expected: PortTarget) -> None:
    assert PortTarget.parse(workload, port) == expected
    assert str(expected) == f"shop/web-0:{port}"


@pytest.mark.parametrize(
    ("workload", "port", "message"),
    [
        ("web-0", 8080, "is not '<namespace>:<pod>'"),
        (":web-0", 8080, "is not '<namespace>:<pod>'"),
        ("shop:", 8080, "is not '<namespace>:<pod>'"),
        ("shop:web:0", 8080, "is not '<namespace>:<pod>'"),
        ('{"ns": "shop"}', 8080, "is not '<namespace>:<pod>'"),
        ('{"ns": "shop", "pod": 1}', 8080, "is not '<namespace>:<pod>'"),
        ("{nope", 8080, "is not '<namespace>:<pod>'"),
        ("shop:web-0", 0, "port 0 is not between 1 and 65535"),
        ("shop:web-0", 70000, "port 70000"),
    ],
)
def test_bad_targets_say_what_is_wrong(workload: str, port: int, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        PortTarget.parse(workload, port)


def test_an_unknown_pod_cannot_be_watched() -> None:
    w = watcher()
    with pytest.raises(PodNotFound, match="pod shop/nope not found"):
        w.watch(PortTarget("shop", "nope", 8080))
    assert len(w) == 0


def test_pod_annotation_changes_the_answer() -> None:
    w = watcher()
    sub, first = w.watch(TARGET)
    assert first == default("all-unauthenticated")
    changes = w.apply(Upserted(replace(WEB, annotations={POLICY: "deny"})))
    assert changes == {sub: default("deny")}
    assert w.apply(Upserted(replace(WEB, annotations={POLICY: "deny"}, labels={"x": "y"}))) == {}


def test_namespace_annotation_changes_the_answer() -> None:
    w = watcher()
    sub, _ = w.watch(TARGET)
    assert w.apply(Upserted(namespace(annotations={POLICY: "all-authenticated"}))) == {
        sub: default("all-authenticated")
    }
    assert w.apply(Upserted(Namespace("other", annotations={POLICY: "deny"}))) == {}


def test_events_of_other_namespaces_are_not_recomputed() -> None:
    w = watcher()
    w.watch(TARGET)
    assert w.apply(Upserted(server(ns="other", selector={}))) == {}
    assert w.apply(Upserted(policy("x", ns="other"))) == {}


def test_server_then_policy_then_authentication() -> None:
    w = watcher()
    sub, _ = w.watch(TARGET)
    denied = InboundServer(Ref.server("web-http"), Protocol.DETECT, ())
    assert w.apply(Upserted(server())) == {sub: denied}
    # The policy names an authentication that does not exist yet: still denied.
    assert w.apply(Upserted(policy("authz", ref("MeshTLSAuthentication", "c", ns="ids")))) == {}
    # Authentications may live in any namespace; this one completes the policy.
    allowed = replace(
        denied,
        authorizations=(
            Authorization(
                Ref.authorization_policy("authz"),
                ALL_NETWORKS,
                TlsAuthenticated((identity("client"),)),
            ),
        ),
    )
    assert w.apply(Upserted(meshtls("c", identity("client"), ns="ids"))) == {sub: allowed}
    assert w.apply(Deleted(MeshTLSAuthentication("ids", "c"))) == {sub: denied}
    assert w.apply(Deleted(server())) == {sub: default("all-unauthenticated")}


def test_a_deleted_pod_ends_the_subscription() -> None:
    w = watcher()
    sub, _ = w.watch(TARGET)
    other, _ = w.watch(PortTarget("other", "other-0", 8080))
    assert w.apply(Deleted(WEB)) == {sub: PodGone(TARGET)}
    assert len(w) == 1
    assert w.apply(Listed(Pod, ())) == {other: PodGone(PortTarget("other", "other-0", 8080))}
    assert len(w) == 0


def test_a_new_listing_recomputes_everything() -> None:
    w = watcher()
    sub, _ = w.watch(TARGET)
    relisted = (replace(WEB, annotations={"config.linkerd.io/opaque-ports": "8080"}),)
    assert w.apply(Listed(Pod, relisted)) == {sub: default("all-unauthenticated", Protocol.OPAQUE)}


def test_unwatch_forgets() -> None:
    w = watcher()
    sub, _ = w.watch(TARGET)
    w.unwatch(sub)
    w.unwatch(sub)
    assert len(w) == 0
    assert w.apply(Upserted(replace(WEB, annotations={POLICY: "deny"}))) == {}


def test_not_synced_until_every_kind_is_listed() -> None:
    snapshot = PolicySnapshot()
    w = PolicyWatcher(CONFIG, snapshot)
    w.apply(Listed(Pod, (WEB,)))
    assert not w.synced
    for kind in KINDS:
        w.apply(Listed(kind, ()))
    assert w.synced
