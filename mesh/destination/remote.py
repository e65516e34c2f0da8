"""Remote clusters as discovery sees them: which Links have usable credentials, and what
each linked cluster holds (sans-IO).

Two cores, both fed events and never doing I/O:

- ``LinkCredentials`` reads the Links and their credentials Secrets (the kubeconfig
  ``multicluster link`` wrote) and says which remote clusters to watch: ``Connect``
  when a cluster's credentials appear or change, ``Disconnect`` when they change or
  go, and for the discovery core ``ClusterLinked`` / ``ClusterNotFound``. A cluster is
  named by its Link's ``targetClusterName`` (what mirrors are labelled with); if two
  Links target one name, the first by Link name wins.
- ``RemoteClusters`` keeps, per linked cluster, one snapshot of its Services,
  EndpointSlices and Pods (shared by every lookup) and its trust domain. Events of a
  superseded session are ignored. A remote API server that goes away keeps the last
  snapshot in use; its next listing replaces it. One that refuses the credentials
(401/403) does not: they are unusable, and the snapshot is stale until they list again.

A cluster is *not found* (CONF-26) when no Link targets it, its Secret is missing or
unusable, its API server refuses the credentials, or it failed before the first
complete listing. Until the Links
and Secrets have been listed once, nothing is known, so nothing is declared missing.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from mesh.destination.config import DiscoveryConfig
from mesh.destination.snapshot import ALL_NAMESPACES, ClusterSnapshot, SnapshotEvent, Touched
from mesh.k8s.events import Listed, Upserted, WatchEvent
from mesh.multicluster.kubeconfig import KubeconfigError, RemoteCluster, parse_kubeconfig

__all__ = [
    "REMOTE_EVENT_TYPES",
    "ClusterLinked",
    "ClusterNotFound",
    "Connect",
    "Credentials",
    "Disconnect",
    "LinkCredentials",
    "LinkedCluster",
    "LinksListed",
    "RemoteClusters",
    "RemoteEvent",
    "RemoteObjects",
    "RemoteTrustDomain",
    "RemoteUnreachable",
    "RemoteView",
]


@dataclass(frozen=True)
class LinkedCluster:
    """What discovery needs of a Link: the cluster it names and where its credentials are."""

    link: str
    cluster: str
    cluster_domain: str
    credentials_secret: str
    control_plane_ns: str = "linkerd"


@dataclass(frozen=True)
class Credentials:
    """A credentials Secret: its kubeconfig text, or why there is none."""

    secret: str
    kubeconfig: str | None = field(default=None, repr=False)
    problem: str = ""


# -- what LinkCredentials asks of the I/O layer ------------------------------------------------


@dataclass(frozen=True)
class Connect:
    """Start watching ``cluster`` with ``remote``'s credentials as session ``session``."""

    cluster: str
    session: int
    remote: RemoteCluster
    control_plane_ns: str


@dataclass(frozen=True)
class Disconnect:
    cluster: str
    session: int


# -- what RemoteClusters is fed ------------------------------------------------------------------


@dataclass(frozen=True)
class LinksListed:
    """Links and Secrets have been listed: a cluster not linked now is really not linked."""


@dataclass(frozen=True)
class ClusterLinked:
    cluster: str
    session: int
    cluster_domain: str


@dataclass(frozen=True)
class ClusterNotFound:
    cluster: str
    reason: str


@dataclass(frozen=True)
class RemoteObjects:
    """A watch event of the remote cluster's objects, from session ``session``."""

    cluster: str
    session: int
    event: SnapshotEvent


@dataclass(frozen=True)
class RemoteTrustDomain:
    """The trust domain the remote cluster's proxies' identities end with."""

    cluster: str
    session: int
    trust_domain: str


@dataclass(frozen=True)
class RemoteUnreachable:
    cluster: str
    session: int
    error: str
    refused: bool = False
    """The API server refused the credentials (401/403): they are unusable, not the network."""


RemoteEvent = (
    LinksListed
    | ClusterLinked
    | ClusterNotFound
    | RemoteObjects
    | RemoteTrustDomain
    | RemoteUnreachable
)
"""Everything the discovery core hears about remote clusters."""

LinkEvent = WatchEvent[LinkedCluster]
CredentialsEvent = WatchEvent[Credentials]


def _fingerprint(remote: RemoteCluster) -> str:
    return hashlib.sha256(f"{remote.server}\0{remote.ca_pem}\0{remote.token}".encode()).hexdigest()


@dataclass
class _Active:
    session: int
    fingerprint: str
    domain: str


class LinkCredentials:
    """Links and credentials Secrets in; which clusters to watch, and with what, out."""

    def __init__(self) -> None:
        self._links: dict[str, LinkedCluster] = {}
        self._secrets: dict[str, Credentials] = {}
        self._listed: set[str] = set()
        self._active: dict[str, _Active] = {}
        self._missing: dict[str, str] = {}
        self._sessions = itertools.count(1)
        self._announced = False

    @property
    def listed(self) -> bool:
        return self._listed >= {"links", "secrets"}

    def apply(
        self, event: LinkEvent | CredentialsEvent
    ) -> list[Connect | Disconnect | RemoteEvent]:
        """Record ``event``; return the sessions to start or stop and what discovery must hear."""
        if isinstance(event, Listed):
            which = "links" if event.kind is LinkedCluster else "secrets"
            self._listed.add(which)
            if which == "links":
                self._links = {o.link: o for o in event.objects if isinstance(o, LinkedCluster)}
            else:
                self._secrets = {o.secret: o for o in event.objects if isinstance(o, Credentials)}
        elif isinstance(event.obj, LinkedCluster):
            if isinstance(event, Upserted):
                self._links[event.obj.link] = event.obj
            else:
                self._links.pop(event.obj.link, None)
        elif isinstance(event.obj, Credentials):
            if isinstance(event, Upserted):
                self._secrets[event.obj.secret] = event.obj
            else:
                self._secrets.pop(event.obj.secret, None)
        if not self.listed:
            return []
        return self._reconcile()

    def _by_cluster(self) -> dict[str, LinkedCluster]:
        chosen: dict[str, LinkedCluster] = {}
        for name in sorted(self._links):
            link = self._links[name]
            chosen.setdefault(link.cluster, link)
        return chosen

    def _credentials(self, link: LinkedCluster) -> RemoteCluster | str:
        creds = self._secrets.get(link.credentials_secret)
        if creds is None:
            return f"Link {link.link}'s credentials Secret {link.credentials_secret} is missing"
        if creds.kubeconfig is None:
            return f"Secret {link.credentials_secret} is unusable: {creds.problem}"
        try:
            return parse_kubeconfig(creds.kubeconfig)
        except KubeconfigError as e:
            return f"Secret {link.credentials_secret} holds an unusable kubeconfig: {e}"

    def _reconcile(self) -> list[Connect | Disconnect | RemoteEvent]:
        out: list[Connect | Disconnect | RemoteEvent] = []
        wanted = self._by_cluster()
        for cluster in sorted((set(self._active) | set(self._missing)) - set(wanted)):
            self._stop(cluster, out)
            if self._missing.get(cluster) != "no Link targets it":
                self._missing[cluster] = "no Link targets it"
                out.append(ClusterNotFound(cluster, "no Link targets it"))
        for cluster, link in sorted(wanted.items()):
            creds = self._credentials(link)
            if isinstance(creds, str):
                self._stop(cluster, out)
                if self._missing.get(cluster) != creds:
                    self._missing[cluster] = creds
                    out.append(ClusterNotFound(cluster, creds))
                continue
            self._missing.pop(cluster, None)
            fingerprint = _fingerprint(creds)
            active = self._active.get(cluster)
            if active is not None and (active.fingerprint, active.domain) == (
                fingerprint,
                link.cluster_domain,
            ):
                continue
            self._stop(cluster, out)
            session = next(self._sessions)
            self._active[cluster] = _Active(session, fingerprint, link.cluster_domain)
            out.append(ClusterLinked(cluster, session, link.cluster_domain))
            out.append(Connect(cluster, session, creds, link.control_plane_ns))
        if not self._announced:
            self._announced = True
            out.append(LinksListed())
        return out

    def _stop(self, cluster: str, out: list[Connect | Disconnect | RemoteEvent]) -> None:
        active = self._active.pop(cluster, None)
        if active is not None:
            out.append(Disconnect(cluster, active.session))


@dataclass(frozen=True)
class RemoteView:
    """A found remote cluster: its objects, and the config its endpoints are computed with."""

    cluster: str
    snapshot: ClusterSnapshot
    config: DiscoveryConfig


@dataclass
class _Cluster:
    session: int
    domain: str
    snapshot: ClusterSnapshot = field(default_factory=ClusterSnapshot)
    trust_domain: str | None = None
    error: str = ""
    refused: bool = False


class RemoteClusters:
    """Per linked cluster, its last known objects; the answer to "is it found?"."""

    def __init__(self, local: DiscoveryConfig) -> None:
        self.local = local
        self.listed = False
        self._clusters: dict[str, _Cluster] = {}
        self._missing: dict[str, str] = {}

    def apply(self, event: RemoteEvent) -> Touched:
        """Record ``event``; return the namespaces whose answers may have changed."""
        if isinstance(event, LinksListed):
            self.listed = True
            return ALL_NAMESPACES
        if isinstance(event, ClusterLinked):
            current = self._clusters.get(event.cluster)
            self._missing.pop(event.cluster, None)
            if current is None:
                self._clusters[event.cluster] = _Cluster(event.session, event.cluster_domain)
            else:
                # new credentials: keep the last objects until the new session lists
                current.session, current.domain, current.error = (
                    event.session,
                    event.cluster_domain,
                    "",
                )
            return ALL_NAMESPACES
        if isinstance(event, ClusterNotFound):
            self._clusters.pop(event.cluster, None)
            self._missing[event.cluster] = event.reason
            return ALL_NAMESPACES
        state = self._clusters.get(event.cluster)
        if state is None or state.session != event.session:
            return frozenset()
        if isinstance(event, RemoteObjects):
            was_found = _found(state)
            state.error, state.refused = "", False
            touched = state.snapshot.apply(event.event)
            return touched if was_found else ALL_NAMESPACES
        if isinstance(event, RemoteTrustDomain):
            if state.trust_domain == event.trust_domain:
                return frozenset()
            state.trust_domain = event.trust_domain
            return ALL_NAMESPACES
        assert isinstance(event, RemoteUnreachable)
        was_found = _found(state)
        state.error = event.error
        state.refused = state.refused or event.refused
        return ALL_NAMESPACES if was_found != _found(state) else frozenset()

    def clusters(self) -> Mapping[str, str]:
        """Each known cluster and its state in words (for logs and tests)."""
        states = {c: f"not found: {r}" for c, r in self._missing.items()}
        for name, c in self._clusters.items():
            if c.refused:
                states[name] = f"credentials refused: {c.error}"
            elif c.snapshot.synced:
                states[name] = "synced" + (f" (last error: {c.error})" if c.error else "")
            else:
                states[name] = f"unreachable: {c.error}" if c.error else "listing"
        return states

    def find(self, cluster: str) -> RemoteView | str | None:
        """The cluster's view; a reason if it is not found; ``None`` while not yet known."""
        if not self.listed:
            return None
        state = self._clusters.get(cluster)
        if state is None:
            return self._missing.get(cluster, "no Link targets it")
        if state.refused:
            return f"its API server refuses the credentials: {state.error}"
        if state.error and not state.snapshot.synced:
            return f"its API server is unreachable: {state.error}"
        config = DiscoveryConfig(
            cluster_domain=state.domain,
            trust_domain=state.trust_domain or self.local.trust_domain,
            control_plane_ns=self.local.control_plane_ns,
            default_opaque_ports=self.local.default_opaque_ports,
            proxy_inbound_port=self.local.proxy_inbound_port,
        )
        return RemoteView(cluster, state.snapshot, config)


def _found(state: _Cluster) -> bool:
    """Whether lookups are answered from ``state`` (``find`` gives a view)."""
    return not state.refused and (not state.error or state.snapshot.synced)


REMOTE_EVENT_TYPES = (
    LinksListed,
    ClusterLinked,
    ClusterNotFound,
    RemoteObjects,
    RemoteTrustDomain,
    RemoteUnreachable,
)
"""The classes of ``RemoteEvent`` (for ``isinstance``)."""
