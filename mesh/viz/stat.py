"""``viz stat`` and ``viz authz`` rows from a window of scrapes, sans I/O.

Rules (Linkerd's, read from the proxies' own series instead of Prometheus):
- Workload kinds (deploy, pod, ns, sts, ...): a row per object that has pods in
  the scrape; without ``--from``/``--to`` its figures are its pods' *inbound*
  responses and open inbound connections. With ``--to R`` they are its pods'
  outbound responses towards R (by the ``dst_*`` labels discovery gave); with
  ``--from R`` they are R's pods' outbound responses towards the row.
- ``svc``: a row per Service; figures are outbound responses with
  ``dst_service``/``dst_namespace`` naming it, from every scraped pod (or the
  ``--from`` pods). A mirror's row names its remote cluster (``cluster``).
- ``authority``: a row per ``authority`` label; inbound series of the
  namespace's pods, or with ``--from`` that resource's outbound series.
- ``trafficsplit``: a row per split and backend (leaf): outbound responses
  whose ``dst_service`` is the leaf, with the backend's weight.
- ``authz``: inbound HTTP of the resource's pods by route, Server and
  authorization; requests refused by policy form a row without authorization,
  counted as UNAUTHORIZED.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mesh.viz.resources import WORKLOAD_KINDS, Resource, Selection
from mesh.viz.scrape import Sample, Workload
from mesh.viz.window import Figures, Window

__all__ = [
    "AuthzRow",
    "ServiceInfo",
    "SplitInfo",
    "StatQuery",
    "StatRow",
    "authz_rows",
    "stat_rows",
]

WorkloadTest = Callable[[Workload], bool]
SampleTest = Callable[[Sample], bool]


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A Service; ``cluster`` is the remote cluster of a mirror, empty for a local one."""

    namespace: str
    name: str
    cluster: str = ""


@dataclass(frozen=True, slots=True)
class SplitInfo:
    """A TrafficSplit: apex Service and weighted backends."""

    namespace: str
    name: str
    apex: str
    backends: tuple[tuple[str, str], ...]
    """Backend Service and its weight as written (``500m``, ``50``)."""


@dataclass(frozen=True)
class StatQuery:
    """What ``viz stat`` was asked: rows of ``selection`` in ``namespace`` (None: all)."""

    selection: Selection
    namespace: str | None
    from_: Resource | None = None
    to: Resource | None = None


@dataclass
class StatRow:
    namespace: str
    name: str
    meshed: str
    figures: Figures
    cluster: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class AuthzRow:
    route: str
    server: str
    authorization: str
    unauthorized: float | None
    figures: Figures


def _direction(value: str) -> SampleTest:
    return lambda s: s.labels.get("direction") == value


def members(resource: Resource, default_ns: str | None) -> WorkloadTest:
    """The pods of ``resource`` (every object of its kind when it has no name)."""
    kind, name = resource.kind, resource.name
    ns = resource.namespace or default_ns
    if kind not in WORKLOAD_KINDS:
        raise ValueError(f"expected a workload (deploy, pod, ns, sts, ...) here, got {kind}")
    if kind == "namespace":
        return lambda w: name is None or w.namespace == name
    return lambda w: (
        (ns is None or w.namespace == ns)
        and (w.owner(kind) is not None and (name is None or w.owner(kind) == name))
    )


def towards(resource: Resource, default_ns: str | None) -> SampleTest:
    """Outbound series whose destination labels name ``resource``."""
    kind, name = resource.kind, resource.name
    ns = resource.namespace or default_ns
    outbound = _direction("outbound")
    if kind == "authority":
        return lambda s: outbound(s) and (name is None or s.labels.get("authority") == name)
    if kind == "namespace":
        return lambda s: outbound(s) and (name is None or s.labels.get("dst_namespace") == name)
    label = f"dst_{kind}"
    return lambda s: (
        outbound(s)
        and label in s.labels
        and (name is None or s.labels[label] == name)
        and (ns is None or s.labels.get("dst_namespace") == ns)
    )


def _meshed(window: Window, who: WorkloadTest) -> str:
    pods = [w for w in window.workloads if who(w)]
    return f"{sum(1 for w in pods if w.meshed)}/{len(pods)}"


def _inbound_tcp(s: Sample) -> bool:
    return s.labels.get("direction") == "inbound" and s.labels.get("peer", "src") == "src"


def _workload_rows(window: Window, q: StatQuery) -> list[StatRow]:
    kind = q.selection.kind
    groups: dict[tuple[str, str], None] = {}
    for w in window.workloads:
        if q.namespace is not None and w.namespace != q.namespace:
            continue
        owner = w.owner(kind)
        if owner is not None and q.selection.wants(owner):
            groups[(w.namespace, owner)] = None
    rows = []
    for ns, name in sorted(groups):
        group = Resource(kind, name, ns)
        who = members(group, ns)
        if q.to is not None:
            fig = window.figures(who, towards(q.to, ns))
        elif q.from_ is not None:
            fig = window.figures(members(q.from_, ns), towards(group, ns))
        else:
            fig = window.figures(who, _direction("inbound"), tcp=_inbound_tcp)
        rows.append(StatRow(ns, name, _meshed(window, who), fig))
    return rows


def _clients(q: StatQuery) -> WorkloadTest:
    return members(q.from_, q.namespace) if q.from_ is not None else (lambda w: True)


def _service_rows(window: Window, q: StatQuery, services: Sequence[ServiceInfo]) -> list[StatRow]:
    rows = []
    clients = _clients(q)
    for svc in sorted(services, key=lambda s: (s.namespace, s.name)):
        if q.namespace is not None and svc.namespace != q.namespace:
            continue
        if not q.selection.wants(svc.name):
            continue
        target = towards(Resource("service", svc.name, svc.namespace), svc.namespace)
        fig = window.figures(clients, target)
        rows.append(StatRow(svc.namespace, svc.name, "-", fig, cluster=svc.cluster))
    return rows


def _authority_rows(window: Window, q: StatQuery, services: Sequence[ServiceInfo]) -> list[StatRow]:
    if q.from_ is not None:
        who, direction = members(q.from_, q.namespace), "outbound"
    else:
        ns = q.namespace
        who, direction = (lambda w: ns is None or w.namespace == ns), "inbound"
    seen: dict[str, str] = {}
    for d in window.deltas:
        s = d.sample
        authority = s.labels.get("authority")
        if (
            s.name == "response_total"
            and authority
            and s.labels.get("direction") == direction
            and who(d.workload)
            and q.selection.wants(authority)
        ):
            cluster = s.labels.get("dst_target_cluster", "")
            seen[authority] = seen.get(authority) or cluster
    mirrors = {(s.namespace, s.name): s.cluster for s in services if s.cluster}
    rows = []
    for authority in sorted(seen):
        host = authority.split(":")[0].split(".")
        cluster = seen[authority] or (mirrors.get((host[1], host[0]), "") if len(host) > 1 else "")

        def sent(s: Sample, a: str = authority) -> bool:
            return s.labels.get("direction") == direction and s.labels.get("authority") == a

        fig = window.figures(who, sent, tcp=lambda s: False)
        rows.append(StatRow(q.namespace or "", authority, "-", fig, cluster=cluster))
    return rows


def _split_rows(window: Window, q: StatQuery, splits: Sequence[SplitInfo]) -> list[StatRow]:
    rows = []
    clients = _clients(q)
    for split in sorted(splits, key=lambda s: (s.namespace, s.name)):
        if q.namespace is not None and split.namespace != q.namespace:
            continue
        if not q.selection.wants(split.name):
            continue
        for leaf, weight in split.backends:
            target = towards(Resource("service", leaf, split.namespace), split.namespace)
            fig = window.figures(clients, target)
            extra = {"apex": split.apex, "leaf": leaf, "weight": weight}
            rows.append(StatRow(split.namespace, split.name, "-", fig, extra=extra))
    return rows


def stat_rows(
    window: Window,
    q: StatQuery,
    services: Sequence[ServiceInfo] = (),
    splits: Sequence[SplitInfo] = (),
) -> list[StatRow]:
    """The rows of ``viz stat`` for ``q`` (see the module docstring)."""
    kind = q.selection.kind
    if q.from_ is not None and q.to is not None:
        raise ValueError("--from and --to cannot be used together")
    if kind in WORKLOAD_KINDS:
        return _workload_rows(window, q)
    if q.to is not None:
        raise ValueError(f"--to is not supported for {kind}; use --from")
    if kind == "service":
        return _service_rows(window, q, services)
    if kind == "authority":
        return _authority_rows(window, q, services)
    if kind == "trafficsplit":
        return _split_rows(window, q, splits)
    raise ValueError(f"viz stat does not support {kind}")


def _server_name(kind: str, name: str) -> str:
    return f"default:{name}" if kind == "default" else name


def authz_rows(window: Window, resource: Resource, namespace: str | None) -> list[AuthzRow]:
    """The rows of ``viz authz`` for the pods of ``resource`` (see the module docstring)."""
    who = members(resource, namespace)
    keys: dict[tuple[str, str, str, str, str], None] = {}
    denied: dict[tuple[str, str, str], None] = {}
    for d in window.deltas:
        if not who(d.workload) or d.sample.labels.get("direction", "inbound") != "inbound":
            continue
        s = d.sample.labels
        route = s.get("route_name", "default")
        server = (s.get("srv_kind", ""), s.get("srv_name", ""))
        if not server[1]:
            continue
        if d.sample.name == "response_total" and s.get("authz_name"):
            keys[(route, *server, s.get("authz_kind", ""), s["authz_name"])] = None
        elif d.sample.name == "inbound_http_authz_deny_total":
            denied[(route, *server)] = None
    rows = []
    for route, skind, sname in sorted(denied):

        def refused(s: Sample, route: str = route, skind: str = skind, sname: str = sname) -> bool:
            return (
                s.labels.get("route_name", "default") == route
                and s.labels.get("srv_kind") == skind
                and s.labels.get("srv_name") == sname
            )

        rate = window.rate(who, "inbound_http_authz_deny_total", refused)
        rows.append(AuthzRow(route, _server_name(skind, sname), "", rate, Figures()))
    for route, skind, sname, akind, aname in sorted(keys):

        def allowed(
            s: Sample,
            route: str = route,
            skind: str = skind,
            sname: str = sname,
            akind: str = akind,
            aname: str = aname,
        ) -> bool:
            return (
                s.labels.get("direction") == "inbound"
                and s.labels.get("route_name", "default") == route
                and s.labels.get("srv_kind") == skind
                and s.labels.get("srv_name") == sname
                and s.labels.get("authz_kind") == akind
                and s.labels.get("authz_name") == aname
            )

        fig = window.figures(who, allowed, tcp=lambda s: False)
        authorization = f"{akind}/{aname}"
        rows.append(AuthzRow(route, _server_name(skind, sname), authorization, 0.0, fig))
    rows.sort(key=lambda r: (r.route, r.server, r.authorization))
    return rows
