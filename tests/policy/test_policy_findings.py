"""Findings: what the policy service reports about policies it cannot honour.

Scenario tables over the sans-IO core (cluster contents -> findings), the tracker's
report-once rule, the Event a finding becomes, and the hub reporting through the
``report`` seam while it serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from mesh.k8s.events import Deleted, Upserted
from mesh.policy.finding_events import finding_event
from mesh.policy.findings import (
    ACCESS_POLICY_UNKNOWN,
    AUTHORIZATION_IGNORED,
    TARGET_NOT_FOUND,
    Finding,
    FindingTracker,
    findings,
)
from mesh.policy.inbound import inbound_server
from mesh.policy.server import PolicyServer, ServerSettings
from mesh.policy.snapshot import PolicyEvent, PolicyObject, PolicySnapshot
from tests.policy.support import (
    CONFIG,
    NS,
    identity,
    meshtls,
    namespace,
    networks,
    pod,
    policy,
    ref,
    server,
)
from tests.policy.test_policy_server import FakeSource, listed

GOOD = meshtls("good", identity("client"))
NETS = networks("nets", "10.42.0.0/16")


@dataclass(frozen=True)
class Scenario:
    name: str
    objects: tuple[PolicyObject, ...]
    expected: frozenset[tuple[str, str, str]]
    """(kind, name, reason) of every finding."""

    def __str__(self) -> str:
        return self.name


SCENARIOS = [
    Scenario(
        "a policy whose references all resolve has no finding",
        (server(), GOOD, policy("authz", ref("MeshTLSAuthentication", "good"))),
        frozenset(),
    ),
    Scenario(
        "a missing MeshTLSAuthentication is reported on the policy and its Server",
        (server(), policy("authz", ref("MeshTLSAuthentication", "absent"))),
        frozenset(
            {
                ("AuthorizationPolicy", "authz", AUTHORIZATION_IGNORED),
                ("Server", "web-http", AUTHORIZATION_IGNORED),
            }
        ),
    ),
    Scenario(
        "a missing NetworkAuthentication beside a present MeshTLSAuthentication",
        (
            server(),
            GOOD,
            policy(
                "authz", ref("MeshTLSAuthentication", "good"), ref("NetworkAuthentication", "nope")
            ),
        ),
        frozenset(
            {
                ("AuthorizationPolicy", "authz", AUTHORIZATION_IGNORED),
                ("Server", "web-http", AUTHORIZATION_IGNORED),
            }
        ),
    ),
    Scenario(
        "a target Server that does not exist",
        (GOOD, policy("authz", ref("MeshTLSAuthentication", "good"), target=ref("Server", "x"))),
        frozenset({("AuthorizationPolicy", "authz", TARGET_NOT_FOUND)}),
    ),
    Scenario(
        "a missing target and a missing authentication: both on the policy, none on a Server",
        (policy("authz", ref("MeshTLSAuthentication", "gone"), target=ref("Server", "x")),),
        frozenset(
            {
                ("AuthorizationPolicy", "authz", TARGET_NOT_FOUND),
                ("AuthorizationPolicy", "authz", AUTHORIZATION_IGNORED),
            }
        ),
    ),
    Scenario(
        "a namespace-wide policy needs no Server",
        (
            GOOD,
            policy(
                "authz", ref("MeshTLSAuthentication", "good"), target=ref("Namespace", NS, group="")
            ),
        ),
        frozenset(),
    ),
    Scenario(
        "an unsupported authentication kind",
        (server(), policy("authz", ref("Secret", "s", group=""))),
        frozenset(
            {
                ("AuthorizationPolicy", "authz", AUTHORIZATION_IGNORED),
                ("Server", "web-http", AUTHORIZATION_IGNORED),
            }
        ),
    ),
    Scenario(
        "a Server with an unknown accessPolicy",
        (server(access_policy="allow-everyone"),),
        frozenset({("Server", "web-http", ACCESS_POLICY_UNKNOWN)}),
    ),
    Scenario(
        "a Server with a default accessPolicy is fine",
        (server(access_policy="all-authenticated"), NETS),
        frozenset(),
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_scenario(scenario: Scenario) -> None:
    snapshot = PolicySnapshot.of((pod(), namespace(), *scenario.objects))
    found = findings(snapshot, CONFIG)
    assert {(f.kind, f.name, f.reason) for f in found} == scenario.expected
    assert all(f.namespace == NS and f.message for f in found)


def test_the_port_a_finding_is_about_is_denied() -> None:
    """What the finding says is what the port does: the ignored policy admits nobody."""
    snapshot = PolicySnapshot.of(
        (pod(), namespace(), server(), policy("authz", ref("MeshTLSAuthentication", "absent")))
    )
    [on_server] = [f for f in findings(snapshot, CONFIG) if f.kind == "Server"]
    assert "MeshTLSAuthentication shop/absent" in on_server.message
    assert inbound_server(snapshot, CONFIG, pod(), 8080).authorizations == ()


def test_each_problem_is_reported_once_while_it_lasts() -> None:
    snapshot = PolicySnapshot.of((pod(), namespace(), server()))
    tracker = FindingTracker(CONFIG)
    assert tracker.update(snapshot) == []
    broken = policy("authz", ref("MeshTLSAuthentication", "good"))
    first = tracker.apply(Upserted(broken), _applied(snapshot, Upserted(broken)))
    assert {(f.kind, f.reason) for f in first} == {
        ("AuthorizationPolicy", AUTHORIZATION_IGNORED),
        ("Server", AUTHORIZATION_IGNORED),
    }
    again = Upserted(pod("web-1"))
    assert tracker.apply(again, _applied(snapshot, again)) == []
    fixed = Upserted(GOOD)
    assert tracker.apply(fixed, _applied(snapshot, fixed)) == []
    assert tracker.current == frozenset()
    gone = Deleted(GOOD)
    back = tracker.apply(gone, _applied(snapshot, gone))
    assert len(back) == 2, "a problem that comes back is reported again"


def test_nothing_is_reported_before_the_first_complete_listing() -> None:
    snapshot = PolicySnapshot()
    tracker = FindingTracker(CONFIG)
    assert tracker.update(snapshot) == []


def _applied(snapshot: PolicySnapshot, event: PolicyEvent) -> PolicySnapshot:
    snapshot.apply(event)
    return snapshot


def test_a_finding_becomes_a_warning_event_on_its_object() -> None:
    finding = Finding("Server", NS, "web-http", AUTHORIZATION_IGNORED, "x" * 2000)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    event = finding_event(finding, "linkerd-policy", now)
    assert event.type == "Warning"
    assert event.reason == AUTHORIZATION_IGNORED
    assert event.involvedObject.kind == "Server"
    assert event.involvedObject.apiVersion == "policy.linkerd.io/v1beta3"
    assert event.involvedObject.name == "web-http"
    assert event.involvedObject.namespace == NS
    assert event.metadata is not None
    assert event.metadata.namespace == NS
    assert event.source is not None
    assert event.source.component == "linkerd-policy"
    assert event.message is not None
    assert len(event.message) == 1024
    policy_event = finding_event(replace(finding, kind="AuthorizationPolicy"), "c", now)
    assert policy_event.involvedObject.apiVersion == "policy.linkerd.io/v1alpha1"


async def test_the_service_reports_findings_as_they_appear() -> None:
    reported: list[Finding] = []
    both = asyncio.Event()

    async def report(finding: Finding) -> None:
        reported.append(finding)
        if len(reported) == 2:
            both.set()

    source = FakeSource(*listed(pod(), namespace(), server()))
    service = PolicyServer(CONFIG, source, ServerSettings(shutdown_grace=0.5), report=report)
    await service.start("127.0.0.1:0")
    try:
        source.push(Upserted(policy("authz", ref("MeshTLSAuthentication", "missing"))))
        await asyncio.wait_for(both.wait(), 5)
        assert sorted((f.kind, f.reason) for f in reported) == [
            ("AuthorizationPolicy", AUTHORIZATION_IGNORED),
            ("Server", AUTHORIZATION_IGNORED),
        ]
    finally:
        await service.stop()
