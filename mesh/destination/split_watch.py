"""The destination service's I/O for traffic splits: watches and problem Events.

``split_streams`` lists and watches TrafficSplits (``split.smi-spec.io``
v1alpha2, which the API server serves for v1alpha1 objects too) and HTTPRoutes
of both API groups, converting each with ``mesh.destination.split_objects``;
an object that does not convert is left out and reported by the watch (SEC-4).
``ProblemReporter`` writes one Warning Event per new ``Problem`` (missing
apex, zero weights, unknown parent, missing backend, conflicting splits) on
the object concerned, and forgets problems once fixed so a recurrence is
reported again. Reporting is best effort: a failed write is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from lightkube import AsyncClient
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from mesh.destination.split_objects import (
    GATEWAY_GROUP,
    POLICY_GROUP,
    SPLIT_GROUP,
    HttpRoute,
    PolicyHttpRoute,
    TrafficSplit,
    http_route,
    traffic_split,
)
from mesh.destination.splits import Problem, SplitEvent
from mesh.k8s.watching import SkipReporter, WatchSettings, list_and_watch

__all__ = [
    "GatewayHttpRouteResource",
    "PolicyHttpRouteResource",
    "ProblemReporter",
    "TrafficSplitResource",
    "split_streams",
]

_log = logging.getLogger(__name__)

TrafficSplitResource = create_namespaced_resource(
    SPLIT_GROUP, "v1alpha2", "TrafficSplit", "trafficsplits"
)
GatewayHttpRouteResource = create_namespaced_resource(
    GATEWAY_GROUP, "v1", "HTTPRoute", "httproutes"
)
PolicyHttpRouteResource = create_namespaced_resource(
    POLICY_GROUP, "v1beta3", "HTTPRoute", "httproutes"
)


def _split(obj: GenericNamespacedResource) -> TrafficSplit:
    return traffic_split(obj.to_dict())  # type: ignore[no-untyped-call]


def _gateway_route(obj: GenericNamespacedResource) -> HttpRoute:
    route = http_route(obj.to_dict())  # type: ignore[no-untyped-call]
    if isinstance(route, PolicyHttpRoute):
        raise ValueError(f"apiVersion of a {GATEWAY_GROUP} HTTPRoute names {POLICY_GROUP}")
    return route


def _policy_route(obj: GenericNamespacedResource) -> PolicyHttpRoute:
    route = http_route(obj.to_dict())  # type: ignore[no-untyped-call]
    if not isinstance(route, PolicyHttpRoute):
        raise ValueError(f"apiVersion of a {POLICY_GROUP} HTTPRoute names another group")
    return route


def split_streams(
    client: AsyncClient, settings: WatchSettings, report: SkipReporter | None
) -> list[AsyncIterator[SplitEvent]]:
    """List-and-watch streams of every object kind traffic splits are made of."""
    return [
        list_and_watch(
            client, TrafficSplitResource, _split, TrafficSplit, settings=settings, report=report
        ),
        list_and_watch(
            client,
            GatewayHttpRouteResource,
            _gateway_route,
            HttpRoute,
            settings=settings,
            report=report,
        ),
        list_and_watch(
            client,
            PolicyHttpRouteResource,
            _policy_route,
            PolicyHttpRoute,
            settings=settings,
            report=report,
        ),
    ]


class ProblemReporter:
    """Writes a Warning Event for each problem not reported before (see the module docstring)."""

    def __init__(self, client: AsyncClient, component: str) -> None:
        self._client = client
        self._component = component
        self._reported: frozenset[Problem] = frozenset()
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, current: frozenset[Problem]) -> None:
        """Report what is new in ``current``; forget what is gone."""
        new = current - self._reported
        self._reported = current
        for problem in sorted(new):
            _log.warning(
                "%s %s/%s: %s", problem.kind, problem.namespace, problem.name, problem.message
            )
            task = asyncio.get_running_loop().create_task(self._write(problem))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, problem: Problem) -> None:
        now = datetime.now(UTC)
        event = Event(
            metadata=ObjectMeta(generateName=f"{problem.name}.", namespace=problem.namespace),
            involvedObject=ObjectReference(
                apiVersion=problem.api_version or None,
                kind=problem.kind,
                name=problem.name,
                namespace=problem.namespace,
                uid=problem.uid or None,
            ),
            reason=problem.reason,
            message=problem.message[:1024],
            type="Warning",
            source=EventSource(component=self._component),
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        try:
            await self._client.create(event)
        except Exception as e:  # best effort: routing goes on without the Event
            _log.warning("cannot record an Event for %s %s: %s", problem.kind, problem.name, e)

    async def close(self) -> None:
        """Wait for Events being written."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
