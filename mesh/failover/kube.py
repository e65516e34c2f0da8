"""The failover controller's Kubernetes edge: two watches, one patch, Events, via lightkube.

Rules: the only module of the controller that calls the API. It reads TrafficSplits
(``split.smi-spec.io/v1alpha2``, only those carrying the selector labels) and every
Endpoints object, as the core's values; it writes only JSON Patches of
``spec.backends[].weight`` and Events on TrafficSplits. RBAC matches exactly:
trafficsplits get/list/watch/patch, endpoints get/list/watch, events create.
A patch whose test failed (the split changed meanwhile) or whose split is gone is a
``conflict``; every other failure is reported as such. Calls raise ``httpx2.HTTPError``
only from the watches, which retry by themselves (``mesh.k8s.watching``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx2
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1
from lightkube.types import PatchType

from mesh.failover.core import Patch, PatchDone, RecordEvent
from mesh.failover.model import Split, split_from_dict
from mesh.k8s.events import WatchEvent
from mesh.k8s.objects import ObjectKey
from mesh.k8s.watching import WatchSettings, event_reporter, list_and_watch

__all__ = [
    "COMPONENT",
    "SPLIT_API_VERSION",
    "EndpointsReadiness",
    "KubeFailover",
    "TrafficSplitResource",
]

COMPONENT = "linkerd-failover"
"""The Events' source component and the controller's field manager."""
SPLIT_API_VERSION = "split.smi-spec.io/v1alpha2"
TrafficSplitResource = create_namespaced_resource(
    "split.smi-spec.io", "v1alpha2", "TrafficSplit", "trafficsplits"
)

_CONFLICT_CODES = (404, 409, 422)
"""A failed JSON Patch test is 422; a split deleted meanwhile 404; a conflict 409."""


@dataclass(frozen=True)
class EndpointsReadiness:
    """Whether the Endpoints ``namespace/name`` list any ready address."""

    namespace: str
    name: str
    ready: bool

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return cast(dict[str, Any], obj.to_dict())


def _split(obj: GenericNamespacedResource) -> Split:
    return split_from_dict(_as_dict(obj))


def _readiness(obj: core_v1.Endpoints) -> EndpointsReadiness:
    meta = obj.metadata or ObjectMeta()
    ready = any(subset.addresses for subset in obj.subsets or ())
    return EndpointsReadiness(meta.namespace or "", meta.name or "", ready)


def _error(e: Exception) -> str:
    if isinstance(e, ApiError):
        return f"{e.status.code} {e.status.reason or ''}: {e.status.message or ''}".strip()
    return f"{type(e).__name__}: {e}"


class KubeFailover:
    """The local cluster as the failover controller uses it."""

    def __init__(
        self, client: AsyncClient, selector: Mapping[str, str], settings: WatchSettings
    ) -> None:
        self.client = client
        self.selector = dict(selector)
        self.settings = settings

    def splits(self) -> AsyncIterator[WatchEvent[Split]]:
        """Managed TrafficSplits in every namespace; unusable ones get a Warning Event."""
        return list_and_watch(
            self.client,
            TrafficSplitResource,
            _split,
            Split,
            labels=self.selector,
            settings=self.settings,
            report=event_reporter(self.client, COMPONENT),
        )

    def endpoints(self) -> AsyncIterator[WatchEvent[EndpointsReadiness]]:
        """Every Endpoints object's readiness, in every namespace."""
        return list_and_watch(
            self.client, core_v1.Endpoints, _readiness, EndpointsReadiness, settings=self.settings
        )

    async def patch(self, patch: Patch) -> PatchDone:
        """Apply ``patch``; its outcome (never raises for an API or transport failure)."""
        split = patch.split
        try:
            result = await self.client.patch(
                TrafficSplitResource,
                split.name,
                cast(Any, patch.ops),
                namespace=split.namespace,
                patch_type=PatchType.JSON,
                field_manager=COMPONENT,
            )
        except ApiError as e:
            conflict = e.status.code in _CONFLICT_CODES
            return PatchDone(patch, ok=False, error=_error(e), conflict=conflict)
        except httpx2.HTTPError as e:
            return PatchDone(patch, ok=False, error=_error(e))
        try:
            after: Split | None = _split(result)
        except ValueError:
            after = None
        return PatchDone(patch, ok=True, result=after)

    async def record_event(self, event: RecordEvent) -> None:
        """Write ``event`` on its TrafficSplit (``httpx2.HTTPError`` on failure)."""
        split = event.split
        now = datetime.now(UTC)
        obj = core_v1.Event(
            metadata=ObjectMeta(
                name=f"{split.name}.{uuid.uuid4().hex[:12]}", namespace=split.namespace
            ),
            involvedObject=ObjectReference(
                apiVersion=SPLIT_API_VERSION,
                kind="TrafficSplit",
                name=split.name,
                namespace=split.namespace,
                uid=split.uid or None,
                resourceVersion=split.resource_version or None,
            ),
            reason=event.reason,
            message=event.message[:1024],
            type=event.type,
            source=EventSource(component=COMPONENT),
            reportingComponent=COMPONENT,
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        await self.client.create(obj)
