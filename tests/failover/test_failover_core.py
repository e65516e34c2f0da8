"""Scenario tests of the failover decision core (CONF-49): events in, commands out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mesh.failover.core import (
    REASONS,
    EndpointsChanged,
    EndpointsListed,
    EndpointsRemoved,
    FailoverCore,
    Forget,
    Observe,
    Patch,
    PatchDone,
    RecordEvent,
    Resync,
    SplitChanged,
    SplitRemoved,
    SplitsListed,
    State,
    decide,
)
from mesh.failover.model import PRIMARY_SERVICE, Backend, Split
from mesh.k8s.objects import ObjectKey

NS = "app"


def split(
    *weights: int | str,
    services: tuple[str, ...] = ("web", "web-east", "web-west"),
    primary: str | None = "web",
    rv: str = "1",
    name: str = "web-failover",
    namespace: str = NS,
) -> Split:
    from mesh.failover.model import parse_weight

    weights = weights or (1,) + (0,) * (len(services) - 1)
    return Split(
        namespace=namespace,
        name=name,
        apex="web",
        backends=tuple(Backend(s, parse_weight(w)) for s, w in zip(services, weights, strict=True)),
        resource_version=rv,
        uid="uid-" + name,
        annotations={PRIMARY_SERVICE: primary} if primary else {},
    )


def ready(*names: str, namespace: str = NS) -> dict[ObjectKey, bool]:
    return {ObjectKey(namespace, n): True for n in names}


def patches(commands: list[object]) -> list[Patch]:
    return [c for c in commands if isinstance(c, Patch)]


def events(commands: list[object]) -> list[RecordEvent]:
    return [c for c in commands if isinstance(c, RecordEvent)]


# -- the decision table ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ready_services", "state", "weights"),
    [
        ({"web", "web-east", "web-west"}, State.PRIMARY, (1, 0, 0)),
        ({"web"}, State.PRIMARY, (1, 0, 0)),
        ({"web-east", "web-west"}, State.SECONDARIES, (0, 1, 1)),
        ({"web-west"}, State.SECONDARIES, (0, 0, 1)),
        (set(), State.NO_READY_BACKEND, None),
    ],
)
def test_decision_table(ready_services: set[str], state: State, weights: object) -> None:
    decision = decide(split(), lambda s: s in ready_services)
    assert decision.state is state
    assert decision.weights == weights


def test_primary_defaults_to_the_first_backend() -> None:
    s = split(services=("api", "web", "api-east"), primary=None)
    assert s.primary == "api"
    assert decide(s, lambda n: n == "web").weights == (0, 1, 0)


def test_a_primary_that_is_not_a_backend_is_invalid() -> None:
    decision = decide(split(primary="nope"), lambda s: True)
    assert decision.state is State.INVALID
    assert decision.weights is None
    assert "'nope' is not a backend" in decision.message


# -- scenarios --------------------------------------------------------------------------------
def synced(core: FailoverCore, *splits: Split, up: dict[ObjectKey, bool]) -> list[object]:
    out: list[object] = list(core.handle(SplitsListed(splits)))
    out += core.handle(EndpointsListed(up))
    return out


def test_nothing_is_decided_before_both_listings() -> None:
    core = FailoverCore()
    assert core.handle(SplitsListed((split(),))) == []
    assert not core.synced
    out = core.handle(EndpointsListed(ready("web-east")))
    assert core.synced
    (patch,) = patches(out)
    assert patch.decision.weights == (0, 1, 0)


def test_a_split_already_right_is_left_alone_without_events() -> None:
    core = FailoverCore()
    out = synced(core, split(), up=ready("web", "web-east"))
    assert patches(out) == []
    assert events(out) == []
    assert [c.state for c in out if isinstance(c, Observe)] == [State.PRIMARY]


def test_primary_down_shifts_to_ready_secondaries_and_back() -> None:
    core = FailoverCore()
    s1 = split(rv="1")
    synced(core, s1, up=ready("web", "web-east", "web-west"))

    out = core.handle(EndpointsChanged(ObjectKey(NS, "web"), False))
    (patch,) = patches(out)
    assert patch.decision.state is State.SECONDARIES
    assert patch.ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "test", "path": "/spec/backends/0/service", "value": "web"},
        {"op": "replace", "path": "/spec/backends/0/weight", "value": 0},
        {"op": "test", "path": "/spec/backends/1/service", "value": "web-east"},
        {"op": "replace", "path": "/spec/backends/1/weight", "value": 1},
        {"op": "test", "path": "/spec/backends/2/service", "value": "web-west"},
        {"op": "replace", "path": "/spec/backends/2/weight", "value": 1},
    ]
    # another event on the same version before the patch lands: no second patch
    assert patches(core.handle(EndpointsChanged(ObjectKey(NS, "web-east"), True))) == []
    assert patches(core.handle(Resync())) == []

    s2 = split(0, 1, 1, rv="2")
    (event,) = events(core.handle(PatchDone(patch, ok=True, result=s2)))
    assert (event.type, event.reason) == ("Normal", REASONS[State.SECONDARIES])
    assert "web-east, web-west" in event.message
    assert patches(core.handle(SplitChanged(s2))) == []

    out = core.handle(EndpointsChanged(ObjectKey(NS, "web"), True))
    (back,) = patches(out)
    assert back.split.resource_version == "2"
    assert back.decision.weights == (1, 0, 0)
    (event,) = events(core.handle(PatchDone(back, ok=True, result=split(rv="3"))))
    assert event.reason == REASONS[State.PRIMARY]


def test_weight_follows_secondaries_readiness_while_primary_is_down() -> None:
    core = FailoverCore()
    synced(core, split(0, 1, 1, rv="5"), up=ready("web-east", "web-west"))
    out = core.handle(EndpointsRemoved(ObjectKey(NS, "web-east")))
    (patch,) = patches(out)
    assert patch.decision.weights == (0, 0, 1)


def test_no_ready_backend_leaves_weights_and_warns_once() -> None:
    core = FailoverCore()
    synced(core, split(0, 1, 0), up=ready("web-east"))
    out = core.handle(EndpointsChanged(ObjectKey(NS, "web-east"), False))
    assert patches(out) == []
    (event,) = events(out)
    assert (event.type, event.reason) == ("Warning", "FailoverNoReadyBackend")
    assert events(core.handle(Resync())) == []
    # the primary recovers: all weight back to it
    (patch,) = patches(core.handle(EndpointsChanged(ObjectKey(NS, "web"), True)))
    assert patch.decision.weights == (1, 0, 0)


def test_invalid_primary_is_reported_once_and_untouched() -> None:
    core = FailoverCore()
    out = synced(core, split(primary="ghost"), up=ready("web-east"))
    assert patches(out) == []
    (event,) = events(out)
    assert (event.type, event.reason) == ("Warning", "FailoverInvalid")
    assert events(core.handle(Resync())) == []


def test_failed_patch_warns_and_is_retried_on_resync() -> None:
    core = FailoverCore()
    (patch,) = patches(synced(core, split(), up=ready("web-west")))
    (event,) = events(core.handle(PatchDone(patch, ok=False, error="500 boom")))
    assert event.reason == "FailoverPatchFailed"
    assert "500 boom" in event.message
    (again,) = patches(core.handle(Resync()))
    assert again.decision == patch.decision


def test_conflict_is_silent_and_the_new_version_is_decided() -> None:
    core = FailoverCore()
    (patch,) = patches(synced(core, split(), up=ready("web-west")))
    assert core.handle(PatchDone(patch, ok=False, error="test failed", conflict=True)) == []
    edited = split(services=("web", "web-west", "web-north"), rv="9")
    (patch2,) = patches(core.handle(SplitChanged(edited)))
    assert patch2.split.resource_version == "9"
    assert patch2.decision.weights == (0, 1, 0)


def test_endpoints_of_unrelated_services_or_namespaces_decide_nothing() -> None:
    core = FailoverCore()
    synced(core, split(), up=ready("web"))
    assert core.handle(EndpointsChanged(ObjectKey(NS, "other"), True)) == []
    assert core.handle(EndpointsChanged(ObjectKey("elsewhere", "web"), False)) == []
    assert core.handle(EndpointsChanged(ObjectKey(NS, "web"), True)) == []  # unchanged


def test_removed_and_relisted_splits_are_forgotten() -> None:
    core = FailoverCore()
    a, b = split(name="a"), split(name="b")
    synced(core, a, b, up=ready("web"))
    assert core.handle(SplitRemoved(a.key)) == [Forget(a.key)]
    out = core.handle(SplitsListed(()))
    assert out == [Forget(b.key)]
    assert core.splits() == ()


def test_quantity_weights_compare_by_value() -> None:
    core = FailoverCore()
    assert patches(synced(core, split("1", "0", "0"), up=ready("web"))) == []
    (patch,) = patches(core.handle(SplitChanged(split("500m", "500m", "0", rv="2"))))
    assert patch.decision.weights == (1, 0, 0)
    assert split("500m", "0", "0").backends[0].weight == Decimal("0.5")
