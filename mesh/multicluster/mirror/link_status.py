"""A Link's ``status``: one ``Mirrored`` condition per selected remote Service, and ``Ready``.

Rules: a condition's ``lastTransitionTime`` changes only when its status flips; the
status is offered for writing (``take``) only when something in it changed, and again
after a failed write (``dirty``). Sans-IO; the clock is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mesh.k8s.objects import ObjectKey

__all__ = ["CONTROLLER_NAME", "Condition", "LinkStatus"]

CONTROLLER_NAME = "linkerd.io/service-mirror"
"""``controllerName`` of the Link status entries this controller writes (Linkerd's)."""
MIRRORED = "Mirrored"
READY = "Ready"


@dataclass
class Condition:
    status: bool
    reason: str
    message: str
    since: str
    local: ObjectKey | None = None


class LinkStatus:
    """The conditions one controller reports on its Link."""

    def __init__(self, clock: Callable[[], str]) -> None:
        self._clock = clock
        self.conditions: dict[ObjectKey, Condition] = {}
        self.ready = Condition(False, "Pending", "the Link has not been read yet", "")
        self.dirty = True

    def keys(self) -> set[ObjectKey]:
        return set(self.conditions)

    def set(
        self, key: ObjectKey, local: ObjectKey | None, status: bool, reason: str, message: str
    ) -> bool:
        """Record ``key``'s condition; whether it newly failed for a reason worth a warning."""
        old = self.conditions.get(key)
        if old is not None and (old.status, old.reason, old.message, old.local) == (
            status,
            reason,
            message,
            local,
        ):
            return False
        since = old.since if old is not None and old.status == status else self._clock()
        self.conditions[key] = Condition(status, reason, message, since, local)
        self.dirty = True
        return not status and reason != "Pending" and (old is None or old.reason != reason)

    def drop(self, key: ObjectKey) -> None:
        if self.conditions.pop(key, None) is not None:
            self.dirty = True

    def set_ready(self, status: bool, reason: str, message: str) -> None:
        old = self.ready
        if (old.status, old.reason, old.message) != (status, reason, message):
            since = old.since if old.status == status and old.since else self._clock()
            self.ready = Condition(status, reason, message, since)
            self.dirty = True

    def take(self) -> dict[str, Any] | None:
        """The status if it changed since the last call, else ``None``."""
        if not self.dirty:
            return None
        self.dirty = False
        return self.render()

    def render(self) -> dict[str, Any]:
        """The Link's status: one entry per selected remote Service (CONF-15), and ``Ready``."""
        entries: list[dict[str, Any]] = []
        for key, cond in sorted(self.conditions.items()):
            condition: dict[str, Any] = {
                "type": MIRRORED,
                "status": "True" if cond.status else "False",
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": cond.since,
            }
            if cond.local is not None:
                condition["localRef"] = {
                    "group": "",
                    "kind": "Service",
                    "name": cond.local.name,
                    "namespace": cond.local.namespace,
                }
            entries.append(
                {
                    "controllerName": CONTROLLER_NAME,
                    "remoteRef": {
                        "group": "",
                        "kind": "Service",
                        "name": key.name,
                        "namespace": key.namespace,
                    },
                    "conditions": [condition],
                }
            )
        ready = self.ready
        return {
            "mirrorServices": entries,
            "conditions": [
                {
                    "type": READY,
                    "status": "True" if ready.status else "False",
                    "reason": ready.reason,
                    "message": ready.message,
                    "lastTransitionTime": ready.since or self._clock(),
                }
            ],
        }
