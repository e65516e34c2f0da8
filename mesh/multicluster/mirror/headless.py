"""Headless mirrors (CONF-29): what one headless remote Service becomes locally, sans-IO.

Rules: a headless remote Service whose endpoints all have hostnames (a StatefulSet's) is
mirrored as a headless ``<svc>-<cluster>`` plus one ClusterIP ``<host>-<cluster>`` per host,
annotated with its parent's name (``mirror.linkerd.io/headless-mirror-svc-name``) and
routed by the gateway as ``<host>.<svc>.<ns>.svc.<target domain>``. Each per-host mirror
has gateway Endpoints like any mirror; the headless mirror's own Endpoints list each
per-host mirror's cluster IP under its hostname (once the API server allocated it), so
cluster DNS answers ``<host>.<svc>-<cluster>.<ns>.svc.<local domain>``. A host that leaves
takes its per-host mirror with it; a remote that stops qualifying is mirrored as ClusterIP
again (the caller recreates the Service, whose clusterIP cannot change in place).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mesh.k8s.objects import Endpoint, ObjectKey, Service
from mesh.multicluster import labels
from mesh.multicluster.mirror import naming
from mesh.multicluster.mirror.desired import (
    EndpointsPort,
    MirrorEndpoints,
    MirrorService,
    Unmirrorable,
)
from mesh.multicluster.mirror.link import Link

__all__ = [
    "HostMirror",
    "headless_endpoints",
    "headless_hosts",
    "host_mirror",
    "parent_of",
]


def parent_of(obj_annotations: Mapping[str, str], namespace: str) -> ObjectKey | None:
    """The headless mirror a per-host mirror (Service or Endpoints) belongs to."""
    parent = obj_annotations.get(labels.HEADLESS_MIRROR_SVC_NAME, "")
    return ObjectKey(namespace, parent) if parent else None


@dataclass(frozen=True)
class HostMirror:
    """One host of a headless mirror: its ClusterIP mirror and whether the remote is ready."""

    host: str
    service: MirrorService
    ready: bool


def headless_hosts(remote: Service, endpoints: Iterable[Endpoint]) -> dict[str, bool] | None:
    """Hostname -> ready of a headless ``remote``; ``None`` if it is not mirrored headless.

    A headless Service qualifies when every endpoint it has carries a hostname (a
    StatefulSet's pods do); with none yet it qualifies too, so the mirror does not flip.
    """
    if not remote.headless:
        return None
    hosts: dict[str, bool] = {}
    for ep in endpoints:
        if not ep.hostname:
            return None
        hosts[ep.hostname] = hosts.get(ep.hostname, False) or ep.ready
    return hosts


def host_mirror(parent: MirrorService, remote: Service, host: str, link: Link) -> MirrorService:
    """The ClusterIP mirror ``<host>-<cluster>`` of one host of the headless ``remote``."""
    try:
        name = naming.mirror_name(host, link.target_cluster_name)
    except naming.InvalidName as e:
        raise Unmirrorable("InvalidMirrorName", str(e)) from None
    fq = naming.remote_fq_name(remote.name, remote.namespace, link.target_cluster_domain)
    annotations = dict(parent.annotations)
    annotations[labels.REMOTE_SVC_FQ_NAME] = f"{host}.{fq}"
    annotations[labels.HEADLESS_MIRROR_SVC_NAME] = parent.name
    return MirrorService(
        namespace=parent.namespace,
        name=name,
        labels=dict(parent.labels),
        annotations=annotations,
        ports=parent.ports,
    )


def headless_endpoints(
    parent: MirrorService, hosts: Iterable[tuple[str, str, bool]]
) -> MirrorEndpoints:
    """The headless mirror's Endpoints: ``(host, per-host mirror cluster IP, ready)`` each."""
    ready: list[str] = []
    not_ready: list[str] = []
    names: dict[str, str] = {}
    for host, ip, ok in sorted(hosts):
        (ready if ok else not_ready).append(ip)
        names[ip] = host
    return MirrorEndpoints(
        parent.namespace,
        parent.name,
        dict(parent.labels),
        {labels.REMOTE_SVC_FQ_NAME: parent.annotations[labels.REMOTE_SVC_FQ_NAME]},
        ready=tuple(ready),
        not_ready=tuple(not_ready),
        ports=tuple(EndpointsPort(p.name, p.port, p.protocol) for p in parent.ports)
        if names
        else (),
        hostnames=names,
    )
