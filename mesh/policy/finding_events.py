"""Findings as Kubernetes Events: the I/O edge of ``mesh.policy.findings``.

Each finding becomes one Warning Event on the object it is about, written by
``linkerd-policy`` with the finding's reason, so ``kubectl describe server <name>``
(or ``authorizationpolicy``) shows why its clients are refused. A write that
fails is logged and dropped: Events are advice, never a reason to stop serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from mesh.policy.findings import Finding

__all__ = ["FindingReporter", "finding_event", "finding_reporter"]

_log = logging.getLogger(__name__)

FindingReporter = Callable[[Finding], Coroutine[Any, Any, None]]
_MAX_MESSAGE = 1024


def finding_event(finding: Finding, component: str, now: datetime | None = None) -> Event:
    """The Warning Event reporting ``finding``."""
    when = now or datetime.now(UTC)
    return Event(
        metadata=ObjectMeta(generateName=f"{finding.name}.", namespace=finding.namespace),
        involvedObject=ObjectReference(
            apiVersion=finding.api_version,
            kind=finding.kind,
            name=finding.name,
            namespace=finding.namespace,
        ),
        reason=finding.reason,
        message=finding.message[:_MAX_MESSAGE],
        type="Warning",
        source=EventSource(component=component),
        firstTimestamp=when,
        lastTimestamp=when,
        count=1,
    )


def finding_reporter(client: AsyncClient, component: str) -> FindingReporter:
    """Write each finding as an Event through ``client``."""

    async def report(finding: Finding) -> None:
        _log.warning("%s %s/%s: %s", finding.kind, finding.namespace, finding.name, finding.message)
        try:
            await client.create(finding_event(finding, component))
        except (ApiError, OSError) as e:
            _log.warning("cannot write an Event about %s/%s: %s", finding.kind, finding.name, e)

    return report
