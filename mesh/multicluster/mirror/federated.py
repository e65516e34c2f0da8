"""Federated services: ``<svc>-federated`` stands for every member of ``svc`` (CONF-28), sans-IO.

Rules:
- A member is a Service matching the Link's ``federatedServiceSelector`` (and not itself a
  mirror), in the Link's target cluster (``svc@cluster`` in the ``remote-discovery``
  annotation, sorted) or in the local cluster (``local-discovery: svc``). The federated
  Service lives in the member's namespace, is a selectorless ClusterIP Service labelled
  ``mirror.linkerd.io/mirrored-service=true`` (so it is never exported again) and never has
  Endpoints: destination resolves it from the annotations.
- Several controllers (one per Link) write the same object. Each one only ever adds or
  removes its own cluster's ``svc@cluster`` entry; the local member is the same Service for
  every controller, so each of them asserts ``local-discovery`` and they agree. Writes are
  read-modify-write of the whole object with its resourceVersion (a conflict re-reads), so
  no controller clobbers another's entry.
- Labels, annotations and ports come from the oldest member (``creationTimestamp``, ties by
  member id); the chosen member is recorded in ``FROM_ANNOTATION`` so every controller can
  tell whether its own member is older. The controller whose member leaves clears the
  record, and the others claim it again. The object is deleted with its last member.
- An entry lives only while a Link targets its cluster (discovery answers a cluster no
  Link targets "not found", so the entry could never serve). When a Link goes (deleted,
  or ``multicluster unlink``), any controller that sees it gone ``prune``s that cluster's
  entries from every federated Service, its own Link's entries included; the local
  member is dropped too once no Link at all is left. A pruned member that carried the
  metadata clears the record, as when it leaves. The object goes with its last member.
- ``merge`` and ``prune`` (through ``apply``) are the only places that decide the next
  object; the core uses them to decide whether a write is needed, the I/O layer to
  compute the write from what it just read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.k8s.objects import ObjectKey, Service, ServicePort
from mesh.multicluster import labels
from mesh.multicluster.mirror.link import Link, excluded

__all__ = [
    "FROM_ANNOTATION",
    "SUFFIX",
    "Claim",
    "Federated",
    "Member",
    "Op",
    "Prune",
    "apply",
    "claim_for",
    "federated_key",
    "is_federated",
    "leftovers",
    "link_target",
    "member_key",
    "merge",
    "prune",
    "stale_clusters",
    "view_of",
]

SUFFIX = "-federated"
FROM_ANNOTATION = "multicluster.isthmus.dev/federated-metadata-from"
"""``<creationTimestamp> <member id>`` of the member whose metadata the object carries."""

_NEVER_COPIED = frozenset(
    {
        *labels.TOPOLOGY_ANNOTATIONS,
        "kubectl.kubernetes.io/last-applied-configuration",
        labels.REMOTE_DISCOVERY,
        labels.LOCAL_DISCOVERY,
        FROM_ANNOTATION,
    }
)


@dataclass(frozen=True)
class Member:
    """One member's contribution: its id (``svc@cluster`` or ``svc`` when local) and metadata."""

    id: str
    created: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[ServicePort, ...] = ()

    @property
    def rank(self) -> tuple[str, str]:
        return (self.created, self.id)

    @property
    def record(self) -> str:
        return f"{self.created} {self.id}"


@dataclass(frozen=True)
class Claim:
    """What one controller asserts about ``<svc>-federated`` in ``namespace``."""

    namespace: str
    service: str
    cluster: str
    remote: Member | None = None
    local: Member | None = None

    @property
    def key(self) -> ObjectKey:
        return federated_key(ObjectKey(self.namespace, self.service))

    @property
    def remote_id(self) -> str:
        return f"{self.service}@{self.cluster}"


@dataclass(frozen=True)
class Prune:
    """Drop from ``<service>-federated`` the entries of clusters outside ``linked``."""

    namespace: str
    service: str
    linked: frozenset[str]
    """Target clusters of the Links that exist (valid or not)."""

    @property
    def key(self) -> ObjectKey:
        return federated_key(ObjectKey(self.namespace, self.service))


Op = Claim | Prune
"""What a controller asks to be done to one federated Service."""


@dataclass(frozen=True)
class Federated:
    """The parts of a federated Service the controllers write."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[ServicePort, ...] = ()

    @property
    def remote_ids(self) -> tuple[str, ...]:
        text = self.annotations.get(labels.REMOTE_DISCOVERY, "")
        return tuple(sorted({p.strip() for p in text.split(",") if p.strip()}))

    @property
    def local_id(self) -> str:
        return self.annotations.get(labels.LOCAL_DISCOVERY, "")

    @property
    def owner(self) -> tuple[str, str] | None:
        """(created, id) of the member whose metadata this carries, if recorded."""
        created, _, member = self.annotations.get(FROM_ANNOTATION, "").partition(" ")
        return (created, member) if member else None

    def manifest(self, namespace: str, name: str) -> dict[str, Any]:
        """The object to create (no clusterIP: the API server allocates one)."""
        ports: list[dict[str, Any]] = []
        for p in self.ports:
            port: dict[str, Any] = {"protocol": p.protocol, "port": p.port}
            if p.name:
                port["name"] = p.name
            if p.target_port is not None:
                port["targetPort"] = p.target_port
            ports.append(port)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(self.labels),
                "annotations": dict(self.annotations),
            },
            "spec": {"type": "ClusterIP", "ports": ports},
        }


def federated_key(member: ObjectKey) -> ObjectKey:
    return ObjectKey(member.namespace, labels.federated_service_name(member.name))


def member_key(federated: ObjectKey) -> ObjectKey | None:
    """The member Service name behind ``<svc>-federated``; ``None`` for any other name."""
    if not federated.name.endswith(SUFFIX) or len(federated.name) <= len(SUFFIX):
        return None
    return ObjectKey(federated.namespace, federated.name[: -len(SUFFIX)])


def is_federated(service: Service) -> bool:
    """A federated Service some controller made (a mirror without a cluster name)."""
    return (
        service.labels.get(labels.MIRRORED_SERVICE) == "true"
        and labels.CLUSTER_NAME not in service.labels
        and member_key(service.key) is not None
    )


def view_of(service: Service) -> Federated:
    return Federated(dict(service.labels), dict(service.annotations), tuple(service.ports))


def _member(member_id: str, service: Service, link: Link) -> Member:
    return Member(
        id=member_id,
        created=service.created,
        labels={
            k: v
            for k, v in service.labels.items()
            if not k.startswith(labels.PREFIX) and not excluded(k, link.excluded_labels)
        },
        annotations={
            k: v
            for k, v in service.annotations.items()
            if k not in _NEVER_COPIED and not excluded(k, link.excluded_annotations)
        },
        ports=tuple(service.ports),
    )


def claim_for(key: ObjectKey, link: Link, remote: Service | None, local: Service | None) -> Claim:
    """This controller's claim for member name ``key`` given its members (``None``: absent)."""
    return Claim(
        namespace=key.namespace,
        service=key.name,
        cluster=link.target_cluster_name,
        remote=_member(f"{key.name}@{link.target_cluster_name}", remote, link) if remote else None,
        local=_member(key.name, local, link) if local else None,
    )


def _with_metadata(member: Member, annotations: Mapping[str, str]) -> Federated:
    kept = {
        k: v
        for k, v in annotations.items()
        if k in (labels.REMOTE_DISCOVERY, labels.LOCAL_DISCOVERY)
    }
    return Federated(
        labels={**member.labels, labels.MIRRORED_SERVICE: "true"},
        annotations={**member.annotations, **kept, FROM_ANNOTATION: member.record},
        ports=member.ports,
    )


def merge(observed: Federated | None, claim: Claim) -> Federated | None:
    """The object after applying ``claim`` to ``observed``; ``None`` means it should not exist.

    Returns ``observed`` itself (the same object) when the claim changes nothing.
    """
    current = observed or Federated()
    remote_ids = set(current.remote_ids)
    if claim.remote is not None:
        remote_ids.add(claim.remote_id)
    else:
        remote_ids.discard(claim.remote_id)
    local_id = claim.service if claim.local is not None else ""
    if not remote_ids and not local_id:
        return None
    annotations = {
        k: v
        for k, v in current.annotations.items()
        if k not in (labels.REMOTE_DISCOVERY, labels.LOCAL_DISCOVERY)
    }
    if remote_ids:
        annotations[labels.REMOTE_DISCOVERY] = ",".join(sorted(remote_ids))
    if local_id:
        annotations[labels.LOCAL_DISCOVERY] = local_id
    nxt = Federated(dict(current.labels), annotations, current.ports)
    ours = {m.id: m for m in (claim.remote, claim.local) if m is not None}
    owner = current.owner if observed is not None else None
    if owner is not None and owner[1] in (claim.remote_id, claim.service) and owner[1] not in ours:
        # Our member carried the metadata and left: let the remaining members claim it.
        owner = None
        annotations.pop(FROM_ANNOTATION, None)
    candidates = sorted(ours.values(), key=lambda m: m.rank)
    if candidates:
        oldest = candidates[0]
        if owner is None or oldest.rank < owner or owner[1] == oldest.id:
            nxt = _with_metadata(oldest, annotations)
        elif owner[1] in ours:
            nxt = _with_metadata(ours[owner[1]], annotations)
    if observed is not None and _same(observed, nxt):
        return observed
    return nxt


def link_target(obj: Mapping[str, Any]) -> tuple[str, str]:
    """A Link's name and target cluster, read leniently (an unusable Link still counts)."""
    meta = obj.get("metadata")
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    spec = obj.get("spec")
    target = spec.get("targetClusterName") if isinstance(spec, Mapping) else None
    return name, target if isinstance(target, str) and target else name


def leftovers(
    services: Iterable[Mapping[str, Any]], links: Iterable[Mapping[str, Any]], link_name: str
) -> list[Mapping[str, Any]]:
    """Federated Services (manifests) nobody will prune once Link ``link_name`` goes.

    ``multicluster unlink`` deletes the controller before the Link. While another Link is
    left, its controller prunes the entries (and deletes what is left empty); when none
    is, every federated Service is left with no member it may keep, so unlink lists them.
    """
    if any(name != link_name for name, _ in map(link_target, links)):
        return []
    out = []
    for obj in services:
        meta = obj.get("metadata") or {}
        service = Service(
            str(meta.get("namespace", "")), str(meta.get("name", "")), labels=_labels_of(meta)
        )
        if is_federated(service):
            out.append(obj)
    return out


def _labels_of(meta: Mapping[str, Any]) -> dict[str, str]:
    """``metadata.labels`` of a manifest as strings (absent: empty)."""
    found = meta.get("labels") or {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}


def _cluster_of(member_id: str) -> str | None:
    _, at, cluster = member_id.partition("@")
    return cluster if at and cluster else None


def stale_clusters(observed: Federated, linked: frozenset[str]) -> frozenset[str]:
    """Clusters with an entry in ``observed`` that no Link targets."""
    clusters = (_cluster_of(m) for m in observed.remote_ids)
    return frozenset(c for c in clusters if c is not None and c not in linked)


def prune(observed: Federated, linked: frozenset[str]) -> Federated | None:
    """``observed`` without the entries of clusters outside ``linked`` (and without its local
    member when ``linked`` is empty); ``None`` when no member is left.

    Returns ``observed`` itself (the same object) when nothing is stale.
    """
    stale = stale_clusters(observed, linked)
    local_id = observed.local_id if linked else ""
    if not stale and local_id == observed.local_id:
        return observed
    remote_ids = [m for m in observed.remote_ids if _cluster_of(m) not in stale]
    if not remote_ids and not local_id:
        return None
    annotations = {
        k: v
        for k, v in observed.annotations.items()
        if k not in (labels.REMOTE_DISCOVERY, labels.LOCAL_DISCOVERY)
    }
    if remote_ids:
        annotations[labels.REMOTE_DISCOVERY] = ",".join(remote_ids)
    if local_id:
        annotations[labels.LOCAL_DISCOVERY] = local_id
    owner = observed.owner
    if owner is not None and owner[1] not in (*remote_ids, local_id):
        # The member carrying the metadata was pruned: the remaining ones claim it.
        annotations.pop(FROM_ANNOTATION, None)
    return Federated(dict(observed.labels), annotations, observed.ports)


def apply(observed: Federated | None, op: Op) -> Federated | None:
    """The object after ``op``: ``merge`` for a claim, ``prune`` for a prune."""
    if isinstance(op, Claim):
        return merge(observed, op)
    return prune(observed, op.linked) if observed is not None else None


def _norm(ports: tuple[ServicePort, ...]) -> frozenset[tuple[str, str, int, str]]:
    return frozenset(
        (p.name, p.protocol, p.port, str(p.target_port if p.target_port is not None else p.port))
        for p in ports
    )


def _same(a: Federated, b: Federated) -> bool:
    return (
        dict(a.labels) == dict(b.labels)
        and dict(a.annotations) == dict(b.annotations)
        and _norm(a.ports) == _norm(b.ports)
    )
