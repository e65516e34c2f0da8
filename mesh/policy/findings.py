"""What the policy service tells operators about policies it cannot honour, sans I/O.

A policy that names something the cluster does not have is not an error the API
server can refuse (the referenced object may come later), so Linkerd's controller
ignores it silently and the port stays denied. Here each such problem becomes a
``Finding`` that the I/O layer writes as a Warning Event, so ``kubectl describe``
of the ``AuthorizationPolicy`` — and of the ``Server`` it targets — says why
clients are refused.

Rules:
- An ``AuthorizationPolicy`` whose ``targetRef`` is a ``Server`` of its namespace
  that does not exist: ``TargetNotFound`` on the policy (it authorizes nothing).
- An ``AuthorizationPolicy`` the core ignores (a missing or unusable
  ``MeshTLSAuthentication`` / ``NetworkAuthentication``, two of one kind, an
  unsupported kind): ``AuthorizationIgnored`` on the policy and, when its target
  Server exists, ``AuthorizationIgnored`` on that Server too.
- A ``Server`` whose ``accessPolicy`` is not a default policy's name:
  ``AccessPolicyUnknown`` on the Server (it grants nothing).
- ``FindingTracker.update`` returns only findings that were not reported by the
  previous update, so an unchanged problem is written once, and a problem that
  was fixed and comes back is written again.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mesh.k8s.events import Listed
from mesh.policy.defaults import DefaultPolicy, PolicyConfig
from mesh.policy.inbound import PolicyError, authorization_policy_authorization
from mesh.policy.resources import (
    POLICY_GROUP,
    AuthorizationPolicy,
    MeshTLSAuthentication,
    NetworkAuthentication,
    Server,
)
from mesh.policy.snapshot import PolicyEvent, PolicySnapshot

__all__ = [
    "ACCESS_POLICY_UNKNOWN",
    "AUTHORIZATION_IGNORED",
    "TARGET_NOT_FOUND",
    "Finding",
    "FindingTracker",
    "findings",
]

TARGET_NOT_FOUND = "TargetNotFound"
AUTHORIZATION_IGNORED = "AuthorizationIgnored"
ACCESS_POLICY_UNKNOWN = "AccessPolicyUnknown"

_AFFECTING: tuple[type, ...] = (
    Server,
    AuthorizationPolicy,
    MeshTLSAuthentication,
    NetworkAuthentication,
)
"""The kinds whose changes can change findings (pods and namespaces cannot)."""

_SERVER_API = f"{POLICY_GROUP}/v1beta3"
_POLICY_API = f"{POLICY_GROUP}/v1alpha1"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem, reported on one object (``kind``/``namespace``/``name``)."""

    kind: str
    namespace: str
    name: str
    reason: str
    message: str

    @property
    def api_version(self) -> str:
        return _SERVER_API if self.kind == "Server" else _POLICY_API


def _target_server(snapshot: PolicySnapshot, policy: AuthorizationPolicy) -> Server | None:
    for server in snapshot.servers(policy.namespace):
        if server.name == policy.target.name and not server.error:
            return server
    return None


def _policy_findings(
    snapshot: PolicySnapshot, config: PolicyConfig, policy: AuthorizationPolicy
) -> Iterator[Finding]:
    targets_server = policy.target.refers_to(POLICY_GROUP, "Server")
    server = _target_server(snapshot, policy) if targets_server else None
    if targets_server and server is None:
        yield Finding(
            "AuthorizationPolicy",
            policy.namespace,
            policy.name,
            TARGET_NOT_FOUND,
            f"targets Server {policy.namespace}/{policy.target.name}, which does not exist: "
            "it authorizes nothing",
        )
    try:
        authorization_policy_authorization(policy, snapshot, config)
    except PolicyError as e:
        yield Finding(
            "AuthorizationPolicy",
            policy.namespace,
            policy.name,
            AUTHORIZATION_IGNORED,
            f"ignored: {e}; the clients it names are denied unless another "
            "authorization admits them",
        )
        if server is not None:
            yield Finding(
                "Server",
                server.namespace,
                server.name,
                AUTHORIZATION_IGNORED,
                f"AuthorizationPolicy {policy.name} is ignored: {e}; the clients it names "
                "are denied unless another authorization admits them",
            )


def findings(snapshot: PolicySnapshot, config: PolicyConfig) -> frozenset[Finding]:
    """Every problem of the policies ``snapshot`` holds."""
    found: set[Finding] = set()
    for namespace in snapshot.policy_namespaces():
        for policy in snapshot.authorization_policies(namespace):
            if not policy.error:
                found.update(_policy_findings(snapshot, config, policy))
        for server in snapshot.servers(namespace):
            access = server.access_policy
            if not server.error and access and DefaultPolicy.parse(access) is None:
                found.add(
                    Finding(
                        "Server",
                        server.namespace,
                        server.name,
                        ACCESS_POLICY_UNKNOWN,
                        f"accessPolicy {access!r} is not a default policy "
                        f"({', '.join(p.value for p in DefaultPolicy)}): it grants nothing",
                    )
                )
    return frozenset(found)


class FindingTracker:
    """Remembers what was reported, so each problem is reported once while it lasts."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._reported: frozenset[Finding] = frozenset()
        self._primed = False

    @property
    def current(self) -> frozenset[Finding]:
        """The problems found by the last update."""
        return self._reported

    def update(self, snapshot: PolicySnapshot) -> list[Finding]:
        """The problems of ``snapshot`` not present at the previous update (none before sync)."""
        if not snapshot.synced:
            return []
        self._primed = True
        now = findings(snapshot, self.config)
        new = sorted(now - self._reported)
        self._reported = now
        return new

    def apply(self, event: PolicyEvent, snapshot: PolicySnapshot) -> list[Finding]:
        """``update`` after ``event`` was applied to ``snapshot``, skipped when it cannot matter."""
        kind = event.kind if isinstance(event, Listed) else type(event.obj)
        if self._primed and kind not in _AFFECTING:
            return []
        return self.update(snapshot)
