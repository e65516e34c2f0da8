"""The mirror controller's decisions: domain events in, commands out (sans-IO).

Rules:
- Level-triggered: each event marks the remote Services it touches; for each, the core
  compares what should exist locally (``desired``) with what the local watch shows and
  asks for the difference. It acts only once the Link is valid and the remote Services
  and EndpointSlices, the local mirrors and the local namespaces have all been listed,
  so it never deletes on partial knowledge; the first such pass is the garbage
  collection of orphaned mirrors (CONF-13).
- A command is asked for once; it is asked again only when what is desired changes, the
  local watch shows something else, or the I/O layer reports it failed (``CommandFailed``
  then ``Retry``).
- A Service is rewritten only when the remote resourceVersion changed or a field the
  controller owns was changed locally (CONF-4). Local Services this Link did not make are
  never touched: a name clash is reported (``NameConflict``).
- Bad input never stops the core: an invalid Link or an unreachable remote freezes the
  mirrors as they are and is reported as the Link's ``Ready`` condition and an Event;
  a remote Service that cannot be mirrored is reported on its own status entry.
- Federated services are decided by ``federated_sync`` (merges of this cluster's claim,
  and prunes of entries no Link stands for, even when the core's own Link is gone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent
from mesh.k8s.objects import Endpoint, EndpointSlice, ObjectKey, Service
from mesh.multicluster import labels
from mesh.multicluster.mirror import federated, headless, naming
from mesh.multicluster.mirror.desired import (
    MirrorEndpoints,
    MirrorService,
    Mode,
    Unmirrorable,
    endpoints_current,
    mirror_endpoints,
    mirror_mode,
    mirror_service,
    service_current,
)
from mesh.multicluster.mirror.federated_sync import FederatedSync
from mesh.multicluster.mirror.link import Link
from mesh.multicluster.mirror.link_status import CONTROLLER_NAME, LinkStatus
from mesh.multicluster.mirror.liveness import GatewaySet, ProbeOutcome
from mesh.multicluster.mirror.messages import (
    ApplyEndpoints,
    ApplyService,
    Command,
    CommandFailed,
    DeleteEndpoints,
    DeleteMirror,
    Event,
    GatewayState,
    LinkInvalid,
    LinksChanged,
    LinkUpdated,
    LocalEvent,
    Namespace,
    ProbeResult,
    RecordEvent,
    RemoteEvent,
    RemoteFailed,
    Retry,
)

__all__ = ["CONTROLLER_NAME", "MirrorCore"]

_log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Remote:
    services: dict[ObjectKey, Service] = field(default_factory=dict)
    services_listed: bool = False
    slices: dict[ObjectKey, EndpointSlice] = field(default_factory=dict)
    slices_listed: bool = False
    ready: dict[ObjectKey, set[str]] = field(default_factory=dict)
    """Remote Service -> names of its EndpointSlices with a ready endpoint."""
    by_service: dict[ObjectKey, set[str]] = field(default_factory=dict)
    """Remote Service -> names of all its EndpointSlices."""


@dataclass
class _Local:
    mirrors: dict[ObjectKey, Service] = field(default_factory=dict)
    foreign: dict[ObjectKey, Service] = field(default_factory=dict)
    """Every other local Service: possible federated members and federated Services."""
    services_listed: bool = False
    endpoints: dict[ObjectKey, MirrorEndpoints] = field(default_factory=dict)
    endpoints_listed: bool = False
    namespaces: set[str] = field(default_factory=set)
    namespaces_listed: bool = False


class MirrorCore:
    """Everything one Link's controller knows, and what it asks the I/O layer to do."""

    def __init__(self, link_name: str, clock: Callable[[], str] = _now) -> None:
        self.link_name = link_name
        self._clock = clock
        self.link: Link | None = None
        self._gateway_ips: tuple[str, ...] = ()
        self._link_problem: tuple[str, str] | None = ("Pending", "the Link has not been read yet")
        self._remote_problem: tuple[str, str] | None = None
        self._remote = _Remote()
        self._local = _Local()
        self._liveness: GatewaySet | None = None
        self._requested_svc: dict[ObjectKey, MirrorService] = {}
        self._requested_ep: dict[ObjectKey, MirrorEndpoints] = {}
        self._requested_del: set[ObjectKey] = set()
        self._requested_ep_del: set[ObjectKey] = set()
        self._fed = FederatedSync(self._out_append, self._warn)
        self._parent: dict[ObjectKey, ObjectKey] = {}
        """Per-host mirror -> its headless mirror (both local keys)."""
        self._children: dict[ObjectKey, set[ObjectKey]] = {}
        self._failed: dict[ObjectKey, str] = {}
        self._status = LinkStatus(clock)
        self._gc_done = False
        self._out: list[Command] = []

    # -- queries ----------------------------------------------------------------------------

    @property
    def cluster(self) -> str:
        return self.link.target_cluster_name if self.link is not None else self.link_name

    @property
    def synced(self) -> bool:
        """Every input listed: the core acts (and ``/ready`` may say so)."""
        r, lo = self._remote, self._local
        return (
            r.services_listed
            and r.slices_listed
            and lo.services_listed
            and lo.endpoints_listed
            and lo.namespaces_listed
        )

    @property
    def local_synced(self) -> bool:
        lo = self._local
        return lo.services_listed and lo.endpoints_listed and lo.namespaces_listed

    def _acting(self) -> bool:
        return self.link is not None and self._link_problem is None and self.synced

    @property
    def gateway_alive(self) -> bool | None:
        lv = self._liveness
        return lv.alive if lv is not None and lv.probed else None

    def mirrors(self) -> dict[ObjectKey, Service]:
        return dict(self._local.mirrors)

    def _out_append(self, command: Command) -> None:
        self._out.append(command)

    # -- events -----------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        """Apply ``event``; the commands it calls for, in order."""
        dirty: set[ObjectKey] = set()
        full = False
        prune_all = False
        match event:
            case LinksChanged(clusters):
                prune_all = self._fed.set_linked(clusters)
            case LinkUpdated(link, ips):
                full = self._on_link(link, ips)
            case LinkInvalid(reason, message):
                if self._link_problem != (reason, message):
                    self._link_problem = (reason, message)
                    self._warn(reason, f"link {self.link_name}: {message}")
                    self._set_ready()
            case RemoteEvent(ev):
                full = self._on_remote(ev, dirty)
            case LocalEvent(ev):
                full = self._on_local(ev, dirty)
            case RemoteFailed(reason, message):
                if self._remote_problem != (reason, message):
                    self._remote_problem = (reason, message)
                    self._warn(reason, f"target cluster {self.cluster}: {message}")
                    self._set_ready()
            case ProbeResult(outcome, address):
                full = self._on_probe(outcome, address)
            case CommandFailed(key, message):
                # What was asked stays asked: it is asked again on ``Retry``, not at once.
                self._failed[key] = message
                dirty.update(self._remote_keys_of(key))
            case Retry(keys):
                for key in keys:
                    self._failed.pop(key, None)
                    self._forget(key)
                    dirty.update(self._remote_keys_of(key))
        self._set_ready()
        if self._acting():
            if full or not self._gc_done:
                self._reconcile_all()
            else:
                for key in sorted(dirty):
                    self._reconcile(key)
        if self._local.services_listed:
            if prune_all or full:
                self._fed.prune_all(self._local.foreign)
            else:
                for key in sorted(dirty):
                    self._fed.prune(federated.federated_key(key), self._local.foreign)
        out, self._out = self._out, []
        return out

    def _on_link(self, link: Link, ips: tuple[str, ...]) -> bool:
        was_problem = self._link_problem is not None
        self._link_problem = None
        if link == self.link and ips == self._gateway_ips and not was_problem:
            return False
        threshold = link.probe.failure_threshold
        if not link.has_gateway:
            self._liveness = None
        elif self._liveness is None or self._liveness.failure_threshold != threshold:
            self._liveness = GatewaySet(threshold, ips)
        else:
            self._liveness.retarget(ips)
        if was_problem and self.link is not None:
            self._event("Normal", "LinkValid", f"link {self.link_name} is valid again")
        self.link, self._gateway_ips = link, ips
        self._set_ready()
        return True

    def _on_remote(
        self, ev: WatchEvent[Service] | WatchEvent[EndpointSlice], dirty: set[ObjectKey]
    ) -> bool:
        r = self._remote
        if isinstance(ev, Listed):
            if ev.kind is Service:
                r.services = {s.key: s for s in ev.objects if isinstance(s, Service)}
                r.services_listed = True
            else:
                r.slices = {s.key: s for s in ev.objects if isinstance(s, EndpointSlice)}
                r.ready, r.by_service = {}, {}
                for s in r.slices.values():
                    self._index_slice(s, add=True)
                r.slices_listed = True
            if self._remote_problem is not None:
                self._remote_problem = None
                self._event("Normal", "RemoteReachable", f"target cluster {self.cluster} listed")
            self._set_ready()
            return True
        obj = ev.obj
        if isinstance(obj, Service):
            if isinstance(ev, Deleted):
                r.services.pop(obj.key, None)
            else:
                r.services[obj.key] = obj
            dirty.add(obj.key)
        else:
            old = r.slices.pop(obj.key, None)
            if old is not None:
                self._index_slice(old, add=False)
            if isinstance(ev, Upserted):
                r.slices[obj.key] = obj
                self._index_slice(obj, add=True)
            if obj.service_key is not None:
                dirty.add(obj.service_key)
        return False

    def _index_slice(self, s: EndpointSlice, *, add: bool) -> None:
        svc = s.service_key
        if svc is None:
            return
        every = self._remote.by_service.setdefault(svc, set())
        if add:
            every.add(s.name)
        else:
            every.discard(s.name)
        names = self._remote.ready.setdefault(svc, set())
        if add and any(ep.ready for ep in s.endpoints):
            names.add(s.name)
        else:
            names.discard(s.name)

    def _endpoints_of(self, key: ObjectKey) -> list[Endpoint]:
        r = self._remote
        out: list[Endpoint] = []
        for name in sorted(r.by_service.get(key, ())):
            s = r.slices.get(ObjectKey(key.namespace, name))
            if s is not None:
                out.extend(s.endpoints)
        return out

    def _on_local(
        self,
        ev: WatchEvent[Service] | WatchEvent[MirrorEndpoints] | WatchEvent[Namespace],
        dirty: set[ObjectKey],
    ) -> bool:
        lo = self._local
        if isinstance(ev, Listed):
            if ev.kind is Service:
                lo.mirrors, lo.foreign = {}, {}
                for s in ev.objects:
                    if isinstance(s, Service):
                        self._observe_service(s)
                        if self._ours(s.labels) and (
                            parent := headless.parent_of(s.annotations, s.namespace)
                        ):
                            self._adopt(s.key, parent)
                lo.services_listed = True
            elif ev.kind is MirrorEndpoints:
                lo.endpoints = {
                    e.key: e
                    for e in ev.objects
                    if isinstance(e, MirrorEndpoints) and self._ours(e.labels)
                }
                lo.endpoints_listed = True
            else:
                lo.namespaces = {n.name for n in ev.objects if isinstance(n, Namespace)}
                lo.namespaces_listed = True
            return True
        obj = ev.obj
        if isinstance(obj, Namespace):
            if isinstance(ev, Deleted):
                lo.namespaces.discard(obj.name)
            else:
                lo.namespaces.add(obj.name)
            dirty.update(k for k in self._remote.services if k.namespace == obj.name)
            return False
        key = ObjectKey(obj.namespace, obj.name)
        if isinstance(obj, MirrorEndpoints) and not self._ours(obj.labels):
            return False  # another link's mirror: never this controller's to touch
        parent = headless.parent_of(obj.annotations, key.namespace)
        if parent is not None and not isinstance(ev, Deleted) and self._ours(obj.labels):
            self._adopt(key, parent)
        if isinstance(obj, Service):
            lo.mirrors.pop(key, None)
            lo.foreign.pop(key, None)
            if isinstance(ev, Deleted):
                self._requested_svc.pop(key, None)
                if key not in lo.endpoints:  # a delete is done when both are gone
                    self._requested_del.discard(key)
            else:
                self._observe_service(obj)
        elif isinstance(ev, Deleted):
            lo.endpoints.pop(key, None)
            self._requested_ep_del.discard(key)
            self._requested_ep.pop(key, None)
            if key not in lo.mirrors:
                self._requested_del.discard(key)
        else:
            lo.endpoints[key] = obj
        gone = isinstance(ev, Deleted) and key not in lo.mirrors and key not in lo.endpoints
        if gone and (parent := self._parent.pop(key, None)) is not None:
            self._children.get(parent, set()).discard(key)
            dirty.update(self._remote_keys_of(parent))
        dirty.update(self._remote_keys_of(key))
        if isinstance(obj, Service):
            dirty.add(key)  # a local federated member
            if (member := federated.member_key(key)) is not None:
                dirty.add(member)  # a federated Service
        return False

    def _remote_keys_of(self, key: ObjectKey) -> list[ObjectKey]:
        """The remote (or member) Services a local key may stand for."""
        if (parent := self._parent.get(key)) is not None:
            key = parent  # a per-host mirror stands for its headless parent's remote
        found = (naming.remote_key(key, self.cluster), federated.member_key(key))
        return [k for k in found if k is not None]

    def _adopt(self, child: ObjectKey, parent: ObjectKey) -> None:
        self._parent[child] = parent
        self._children.setdefault(parent, set()).add(child)

    def _ours(self, object_labels: Mapping[str, str]) -> bool:
        """Whether a local object with these labels is a mirror of this link's cluster."""
        return (
            object_labels.get(labels.MIRRORED_SERVICE) == "true"
            and object_labels.get(labels.CLUSTER_NAME) == self.cluster
        )

    def _observe_service(self, s: Service) -> None:
        if self._ours(s.labels):
            self._local.mirrors[s.key] = s
        else:
            self._local.foreign[s.key] = s

    def _on_probe(self, outcome: ProbeOutcome, address: str) -> bool:
        lv = self._liveness
        if lv is None:
            return False
        was_alive = lv.alive
        changed = lv.observe(outcome, address)
        self._out.append(GatewayState(lv.alive, outcome.latency_ms if outcome.ok else None))
        where = f" at {address}" if address else ""
        if lv.alive and not was_alive:
            self._event("Normal", "GatewayAlive", f"gateway of {self.cluster} answers probes again")
        elif not lv.alive and was_alive:
            self._warn(
                "GatewayDown",
                f"gateway of {self.cluster} failed {lv.failures} probes in a row "
                f"({outcome.describe()}{where}); mirror endpoints are not ready",
            )
        elif changed and address:
            up = address not in lv.dead
            self._event(
                "Normal" if up else "Warning",
                "GatewayAddressAlive" if up else "GatewayAddressDown",
                f"gateway address {address} of {self.cluster} "
                + ("answers probes again" if up else f"failed its probes ({outcome.describe()})"),
            )
        return changed

    # -- reconciling ------------------------------------------------------------------------

    def _reconcile_all(self) -> None:
        keys = set(self._remote.services) | self._status.keys()
        for fkey, svc in self._local.foreign.items():
            keys.add(fkey)  # a local federated member
            if federated.is_federated(svc) and (member := federated.member_key(fkey)):
                keys.add(member)
        stray: list[ObjectKey] = []
        for mkey in [*self._local.mirrors, *self._local.endpoints]:
            rk = naming.remote_key(mkey, self.cluster)
            if rk is None:
                stray.append(mkey)
            else:
                keys.add(rk)
        for parent in set(self._parent.values()):
            keys.update(self._remote_keys_of(parent))
        first = not self._gc_done
        before = len(self._out)
        for mkey in stray:
            self._delete(mkey, "its name is not <service>-<cluster>")
        for key in sorted(keys):
            self._reconcile(key)
        if first:
            self._gc_done = True
            gc = [c for c in self._out[before:] if isinstance(c, DeleteMirror)]
            if gc:
                self._event(
                    "Normal",
                    "OrphanedServicesGc",
                    f"deleted {len(gc)} mirrors whose remote Service is no longer exported",
                )

    def _reconcile(self, key: ObjectKey) -> None:
        self._reconcile_mirror(key)
        link = self.link
        assert link is not None
        lo = self._local
        self._fed.reconcile(key, link, self._remote.services.get(key), lo.foreign, lo.namespaces)

    def _reconcile_mirror(self, key: ObjectKey) -> None:
        link = self.link
        assert link is not None
        remote = self._remote.services.get(key)
        mode = mirror_mode(remote, link) if remote is not None else None
        try:
            mkey = naming.mirror_key(key, link.target_cluster_name)
        except naming.InvalidName as e:
            mkey = None
            if remote is not None and mode is not None:
                self._condition(key, None, False, "InvalidMirrorName", str(e))
                return
        if mkey is not None and mkey in self._parent:
            return  # a per-host mirror: its headless parent reconciles it
        if remote is None or mode is None or mkey is None:
            self._drop_condition(key)
            if mkey is not None:
                why = "deleted in the target" if remote is None else "no longer exported"
                self._delete(mkey, f"{key} {why}")
            return
        if key.namespace not in self._local.namespaces:
            self._condition(
                key, mkey, False, "MissingNamespace", f"namespace {key.namespace} does not exist"
            )
            return
        if mkey in self._local.foreign:
            self._condition(
                key,
                mkey,
                False,
                "NameConflict",
                f"local Service {mkey} exists and is not a mirror of {self.cluster}",
            )
            return
        try:
            desired = mirror_service(remote, link, mode)
        except Unmirrorable as e:
            self._condition(key, mkey, False, e.reason, e.message)
            self._delete(mkey, f"{key} cannot be mirrored")
            return
        hosts = None
        if mode is Mode.GATEWAY:
            hosts = headless.headless_hosts(remote, self._endpoints_of(key))
        if hosts is not None:
            desired = replace(desired, headless=True)
        observed = self._local.mirrors.get(mkey)
        if observed is not None and observed.headless != desired.headless:
            # A Service's clusterIP cannot change in place: delete, then create anew.
            self._delete(mkey, f"{key} switches between headless and ClusterIP")
            self._condition(key, mkey, False, "Pending", "the mirror is being recreated")
            return
        self._apply_service(desired, observed)
        if observed is None:
            _log.info("mirroring %s as %s", key, mkey)
        if hosts is not None:
            self._reconcile_hosts(mkey, remote, desired, link, hosts)
        elif mode is Mode.GATEWAY:
            self._reconcile_endpoints(mkey, desired, link, remote.key)
            self._delete_children(mkey, set(), "the remote is no longer mirrored headless")
        elif mkey in self._local.endpoints and mkey not in self._requested_ep_del:
            self._requested_ep_del.add(mkey)
            self._out.append(DeleteEndpoints(mkey))
        if mkey in self._failed:
            self._condition(key, mkey, False, "ApplyFailed", self._failed[mkey])
        elif observed is None:
            self._condition(key, mkey, False, "Pending", "the mirror is being created")
        else:
            self._condition(key, mkey, True, "Mirrored", "")

    def _apply_service(self, desired: MirrorService, observed: Service | None) -> None:
        if (observed is None or not service_current(observed, desired)) and self._requested_svc.get(
            desired.key
        ) != desired:
            self._requested_svc[desired.key] = desired
            self._out.append(ApplyService(desired, create=observed is None))

    def _reconcile_hosts(
        self,
        mkey: ObjectKey,
        remote: Service,
        parent: MirrorService,
        link: Link,
        hosts: dict[str, bool],
    ) -> None:
        """Per-host mirrors of a headless mirror, and its Endpoints naming them (CONF-29)."""
        wanted: set[ObjectKey] = set()
        named: list[tuple[str, str, bool]] = []
        for host, ready in sorted(hosts.items()):
            try:
                child = headless.host_mirror(parent, remote, host, link)
            except Unmirrorable as e:
                _log.warning("host %s of %s cannot be mirrored: %s", host, remote.key, e)
                continue
            if child.key in self._local.foreign or (
                child.key in self._local.mirrors and self._parent.get(child.key) != mkey
            ):
                _log.warning("per-host mirror %s of %s clashes with a Service", child.key, mkey)
                continue
            wanted.add(child.key)
            self._adopt(child.key, mkey)
            observed = self._local.mirrors.get(child.key)
            self._apply_service(child, observed)
            self._apply_endpoints(self._gateway_endpoints(child, link, remote_ready=ready))
            if observed is not None and observed.addresses():
                named.append((host, observed.addresses()[0], ready))
        self._delete_children(mkey, wanted, "its host left the headless remote Service")
        self._apply_endpoints(headless.headless_endpoints(parent, named))

    def _delete_children(self, mkey: ObjectKey, keep: set[ObjectKey], why: str) -> None:
        for child in sorted(self._children.get(mkey, set()) - keep):
            self._delete(child, why)

    def _gateway_endpoints(
        self, svc: MirrorService, link: Link, *, remote_ready: bool
    ) -> MirrorEndpoints:
        lv = self._liveness
        return mirror_endpoints(
            svc,
            link,
            self._gateway_ips,
            remote_ready=remote_ready,
            gateway_alive=lv is None or lv.alive,
            dead=lv.dead if lv is not None else frozenset(),
        )

    def _reconcile_endpoints(
        self, mkey: ObjectKey, svc: MirrorService, link: Link, remote: ObjectKey
    ) -> None:
        ready = bool(self._remote.ready.get(remote))
        self._apply_endpoints(self._gateway_endpoints(svc, link, remote_ready=ready))

    def _apply_endpoints(self, desired: MirrorEndpoints) -> None:
        mkey = desired.key
        observed = self._local.endpoints.get(mkey)
        if observed is not None and endpoints_current(observed, desired):
            return
        if self._requested_ep.get(mkey) != desired:
            self._requested_ep[mkey] = desired
            self._out.append(ApplyEndpoints(desired))

    def _delete(self, mkey: ObjectKey, why: str) -> None:
        if mkey not in self._parent:
            self._delete_children(mkey, set(), why)
        present = mkey in self._local.mirrors or mkey in self._local.endpoints
        if present and mkey not in self._requested_del:
            self._requested_del.add(mkey)
            self._requested_svc.pop(mkey, None)
            self._requested_ep.pop(mkey, None)
            _log.info("deleting mirror %s: %s", mkey, why)
            self._out.append(DeleteMirror(mkey, why))

    def _forget(self, mkey: ObjectKey) -> None:
        self._fed.forget(mkey)
        self._requested_svc.pop(mkey, None)
        self._requested_ep.pop(mkey, None)
        self._requested_del.discard(mkey)
        self._requested_ep_del.discard(mkey)

    # -- status and events ------------------------------------------------------------------

    def _event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self._out.append(RecordEvent(type_, reason, message))

    def _warn(self, reason: str, message: str) -> None:
        _log.warning("%s: %s", reason, message)
        self._event("Warning", reason, message)

    def _condition(
        self, key: ObjectKey, local: ObjectKey | None, status: bool, reason: str, message: str
    ) -> None:
        if self._status.set(key, local, status, reason, message):
            self._warn(reason, f"cannot mirror {key} from {self.cluster}: {message}")

    def _drop_condition(self, key: ObjectKey) -> None:
        self._status.drop(key)

    def _set_ready(self) -> None:
        if self._link_problem is not None:
            status, (reason, message) = False, self._link_problem
        elif self._remote_problem is not None:
            status, (reason, message) = False, self._remote_problem
        elif not self.synced:
            status, reason, message = False, "Pending", "listing the target and local clusters"
        else:
            status, reason, message = True, "Mirroring", f"mirroring services of {self.cluster}"
        self._status.set_ready(status, reason, message)

    def mark_status_dirty(self) -> None:
        """The last status taken was not written: offer it again."""
        self._status.dirty = True

    def take_status(self) -> dict[str, Any] | None:
        """The Link's ``status`` if it changed since the last call, else ``None``."""
        self._set_ready()
        return self._status.take()

    def status(self) -> dict[str, Any]:
        """The Link's status: one entry per selected remote Service (CONF-15), and ``Ready``."""
        return self._status.render()
