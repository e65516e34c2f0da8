"""Traffic splits as discovery answers them: which backends a service's requests go to.

``SplitStore`` keeps the TrafficSplits and HTTPRoutes the watches report.
``routing`` computes, for one Service and port, what a profile carries:

- ``http_routes``: the rules of every HTTPRoute (either API group) whose
  ``parentRef`` is this Service (``group`` ``core`` or empty, ``kind: Service``,
  the route's own namespace, no port or this port), flattened one entry per
  match and ordered by Gateway API precedence: exact path, then longest prefix,
  then method, then most headers, then the older route, then rule order. A rule
  without ``backendRefs`` sends to the parent Service itself. Backends are
  Services in the route's namespace; any other kind, namespace or a Service
  that does not exist is a backend that does not exist (500 for its share).
- ``dst_overrides``: the backends of the TrafficSplit whose apex is this
  Service (the first by name if several; the others are reported), when no
  HTTPRoute is attached; a backend Service that does not exist keeps its
  share with an empty authority (500). A split whose weights add up to 0 is
  ignored (direct routing) and reported.

A backend's authority is ``<svc>.<ns>.svc.<cluster-domain>:<port>`` (the backend
ref's port, else the requested one), which proxies resolve with ``Get``
alone: backends are not split again. Mirror services are Services like any
other, so they are valid backends.

``problems`` lists what is wrong with the objects (missing apex, zero total
weight, unknown parent, missing backend, a second split on one apex), so the
I/O layer can report each as a Warning Event once. All of it is pure.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from mesh.destination.split_objects import (
    GATEWAY_GROUP,
    POLICY_GROUP,
    BackendRef,
    HttpRoute,
    ParentRef,
    PathKind,
    PolicyHttpRoute,
    RouteMatch,
    TrafficSplit,
)
from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent
from mesh.k8s.objects import ObjectKey, Service

__all__ = [
    "ALL",
    "Problem",
    "RouteEntry",
    "Routing",
    "ServiceLookup",
    "SplitEvent",
    "SplitStore",
    "WeightedDst",
    "problems",
    "routing",
]

_OTHER_PARENTS = frozenset({(GATEWAY_GROUP, "Gateway"), (POLICY_GROUP, "Server")})
"""Parents of routes that are not discovery's: a Gateway's, or a Server's (inbound policy)."""

SplitEvent = WatchEvent[TrafficSplit] | WatchEvent[HttpRoute] | WatchEvent[PolicyHttpRoute]
"""What feeds a ``SplitStore``."""
ALL: frozenset[str] | None = None


@dataclass(frozen=True)
class WeightedDst:
    """A traffic-split backend: an authority (empty: does not exist) and its relative weight."""

    authority: str
    weight: int


@dataclass(frozen=True)
class RouteEntry:
    """One match of an HTTPRoute rule and where the requests it matches go."""

    match: RouteMatch
    backends: tuple[WeightedDst, ...]


@dataclass(frozen=True)
class Routing:
    """How a service's requests are divided; empty: routed directly."""

    dst_overrides: tuple[WeightedDst, ...] = ()
    http_routes: tuple[RouteEntry, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dst_overrides or self.http_routes)


@dataclass(frozen=True, order=True)
class Problem:
    """Something wrong with a split object, to be reported once as a Warning Event."""

    kind: str
    namespace: str
    name: str
    reason: str
    message: str
    api_version: str = ""
    uid: str = ""


class ServiceLookup(Protocol):
    """What ``routing`` needs of the cluster: a Service by namespace and name."""

    def service(self, namespace: str, name: str) -> Service | None: ...


class SplitStore:
    """Every TrafficSplit and HTTPRoute the watches have reported, indexed by parent."""

    def __init__(self) -> None:
        self.splits: dict[ObjectKey, TrafficSplit] = {}
        self.routes: dict[tuple[str, ObjectKey], HttpRoute] = {}

    def apply(self, event: SplitEvent) -> frozenset[str] | None:
        """Record ``event``; return the namespaces it touched (``None``: possibly all)."""
        if isinstance(event, Listed):
            if event.kind is TrafficSplit:
                self.splits = {s.key: s for s in event.objects if isinstance(s, TrafficSplit)}
            else:  # one Listed per API group (its kind): keep the other group's routes
                group = POLICY_GROUP if event.kind is PolicyHttpRoute else GATEWAY_GROUP
                self.routes = {k: r for k, r in self.routes.items() if k[0] != group}
                self.routes.update(
                    {(r.group, r.key): r for r in event.objects if isinstance(r, HttpRoute)}
                )
            return ALL
        obj = event.obj
        if isinstance(obj, TrafficSplit):
            if isinstance(event, Upserted):
                self.splits[obj.key] = obj
            elif isinstance(event, Deleted):
                self.splits.pop(obj.key, None)
        elif isinstance(obj, HttpRoute):
            if isinstance(event, Upserted):
                self.routes[(obj.group, obj.key)] = obj
            elif isinstance(event, Deleted):
                self.routes.pop((obj.group, obj.key), None)
        namespaces = {obj.namespace}
        if isinstance(obj, HttpRoute):
            namespaces.update(p.namespace for p in obj.parents)
        return frozenset(namespaces)

    def splits_for(self, namespace: str, apex: str) -> list[TrafficSplit]:
        """TrafficSplits on ``apex``, by name."""
        found = [s for s in self.splits.values() if s.namespace == namespace and s.apex == apex]
        return sorted(found, key=lambda s: s.name)

    def routes_for(self, namespace: str, service: str, port: int) -> list[HttpRoute]:
        """HTTPRoutes attached to the Service (and ``port``), oldest first."""
        found = [
            r
            for r in self.routes.values()
            if r.namespace == namespace
            and any(_attaches(r, p, namespace, service, port) for p in r.parents)
        ]
        return sorted(found, key=lambda r: (r.created, r.namespace, r.name, r.group))


def _attaches(
    route: HttpRoute, parent: ParentRef, namespace: str, service: str, port: int | None
) -> bool:
    return (
        parent.is_service
        and parent.namespace == route.namespace == namespace
        and parent.name == service
        and (parent.port is None or port is None or parent.port == port)
    )


def _authority(service: str, namespace: str, port: int, cluster_domain: str) -> str:
    return f"{service}.{namespace}.svc.{cluster_domain}:{port}"


def _backend_dst(
    ref: BackendRef, route: HttpRoute, port: int, lookup: ServiceLookup, cluster_domain: str
) -> WeightedDst:
    usable = (
        ref.is_service
        and ref.namespace == route.namespace
        and lookup.service(ref.namespace, ref.name) is not None
    )
    authority = _authority(ref.name, ref.namespace, ref.port or port, cluster_domain)
    return WeightedDst(authority if usable else "", ref.weight)


def _precedence(entry: tuple[RouteMatch, int, int]) -> tuple[int, int, int, int, int, int]:
    match, route_order, rule_order = entry
    exact = 0 if match.path_kind == PathKind.EXACT else 1
    prefix = -len(match.path) if match.path_kind == PathKind.PREFIX else 0
    return (
        exact,
        prefix,
        0 if match.method else 1,
        -len(match.headers),
        route_order,
        rule_order,
    )


def _http_routes(
    routes: list[HttpRoute],
    service: Service,
    port: int,
    lookup: ServiceLookup,
    cluster_domain: str,
) -> tuple[RouteEntry, ...]:
    ranked: list[tuple[tuple[int, ...], RouteEntry]] = []
    for route_order, route in enumerate(routes):
        for rule_order, rule in enumerate(route.rules):
            if rule.backends:
                backends = tuple(
                    _backend_dst(b, route, port, lookup, cluster_domain) for b in rule.backends
                )
            else:  # no backendRefs: the parent Service itself
                parent = _authority(service.name, service.namespace, port, cluster_domain)
                backends = (WeightedDst(parent, 1000),)
            for match in rule.matches:
                key = _precedence((match, route_order, rule_order))
                ranked.append((key, RouteEntry(match, backends)))
    ranked.sort(key=lambda pair: pair[0])
    return tuple(entry for _, entry in ranked)


def routing(
    lookup: ServiceLookup, store: SplitStore, service: Service, port: int, cluster_domain: str
) -> Routing:
    """How requests to ``service`` on ``port`` are divided now (see the module docstring)."""
    routes = store.routes_for(service.namespace, service.name, port)
    if routes:
        return Routing(http_routes=_http_routes(routes, service, port, lookup, cluster_domain))
    splits = store.splits_for(service.namespace, service.name)
    if not splits or splits[0].total_weight <= 0:
        return Routing()
    split = splits[0]
    overrides = tuple(
        WeightedDst(
            _authority(b.service, split.namespace, port, cluster_domain)
            if lookup.service(split.namespace, b.service) is not None
            else "",
            b.weight,
        )
        for b in split.backends
    )
    return Routing(dst_overrides=overrides)


def _split_problems(lookup: ServiceLookup, store: SplitStore) -> list[Problem]:
    found = []
    by_apex: dict[tuple[str, str], list[TrafficSplit]] = defaultdict(list)
    for split in store.splits.values():
        by_apex[(split.namespace, split.apex)].append(split)

        def problem(reason: str, message: str, split: TrafficSplit = split) -> Problem:
            return Problem(
                "TrafficSplit",
                split.namespace,
                split.name,
                reason,
                message,
                split.api_version,
                split.uid,
            )

        if lookup.service(split.namespace, split.apex) is None:
            found.append(
                problem("ApexNotFound", f"apex Service {split.namespace}/{split.apex} not found")
            )
        if split.total_weight <= 0:
            found.append(
                problem(
                    "NoWeight", "backend weights add up to 0: the split is ignored (direct routing)"
                )
            )
        for b in split.backends:
            if lookup.service(split.namespace, b.service) is None:
                found.append(
                    problem(
                        "BackendNotFound",
                        f"backend Service {split.namespace}/{b.service} not found: "
                        "its share of requests fails with 500",
                    )
                )
    for (namespace, apex), splits in by_apex.items():
        splits.sort(key=lambda s: s.name)
        for extra in splits[1:]:
            found.append(
                Problem(
                    "TrafficSplit",
                    extra.namespace,
                    extra.name,
                    "Conflict",
                    f"TrafficSplit {splits[0].name} already splits {namespace}/{apex}; "
                    "this one is ignored",
                    extra.api_version,
                    extra.uid,
                )
            )
    return found


def _route_problems(lookup: ServiceLookup, store: SplitStore) -> list[Problem]:
    found = []
    for route in store.routes.values():

        def problem(reason: str, message: str, route: HttpRoute = route) -> Problem:
            return Problem(
                "HTTPRoute",
                route.namespace,
                route.name,
                reason,
                message,
                route.api_version,
                route.uid,
            )

        for parent in route.parents:
            if (parent.group, parent.kind) in _OTHER_PARENTS:
                continue  # an ingress route, or an inbound policy route: not for discovery
            if not parent.is_service:
                found.append(
                    problem(
                        "UnsupportedParent",
                        f"parentRef {parent.group or 'core'}/{parent.kind} {parent.name} is "
                        "neither a Service, a Gateway nor a Server: ignored",
                    )
                )
            elif parent.namespace != route.namespace:
                found.append(
                    problem(
                        "UnsupportedParent",
                        f"parentRef Service {parent.namespace}/{parent.name} is in another "
                        "namespace: only producer routes are supported, ignored",
                    )
                )
            elif lookup.service(parent.namespace, parent.name) is None:
                found.append(
                    problem(
                        "ParentNotFound",
                        f"parent Service {parent.namespace}/{parent.name} not found",
                    )
                )
        if not any(p.is_service for p in route.parents):
            continue  # whose backends these are is not discovery's business
        for rule in route.rules:
            for ref in rule.backends:
                if not ref.is_service or ref.namespace != route.namespace:
                    found.append(
                        problem(
                            "UnsupportedBackend",
                            f"backendRef {ref.kind} {ref.namespace}/{ref.name} is not a Service "
                            "in the route's namespace: its share fails with 500",
                        )
                    )
                elif lookup.service(ref.namespace, ref.name) is None:
                    found.append(
                        problem(
                            "BackendNotFound",
                            f"backend Service {ref.namespace}/{ref.name} not found: "
                            "its share of requests fails with 500",
                        )
                    )
    return found


def problems(lookup: ServiceLookup, store: SplitStore) -> frozenset[Problem]:
    """Everything wrong with the split objects now."""
    return frozenset(_split_problems(lookup, store) + _route_problems(lookup, store))
