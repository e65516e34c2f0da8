"""The mirror core's federated-service decisions: what to merge or prune, asked once (sans-IO).

Rules:
- For each member name the core claims its cluster's member and the local one, and asks
  for a merge whenever the observed ``<svc>-federated`` does not already reflect the
  claim. A local Service of that name that is not federated is never touched: the clash
  is reported once (``NameConflict``).
- Once the Links are known, a claim is made only while a Link targets the core's own
  cluster; otherwise its entries are pruned, not claimed.
- Independently of the core's own Link (it may be deleted), every federated Service seen
  is pruned of the entries of clusters no Link targets (``federated.prune``).
- A write is asked again only when the claim, the Links or the observed resourceVersion
  change, or after the I/O layer reports a failure (``forget``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from mesh.k8s.objects import ObjectKey, Service
from mesh.multicluster.mirror import federated, naming
from mesh.multicluster.mirror.desired import is_mirror
from mesh.multicluster.mirror.link import Link
from mesh.multicluster.mirror.messages import ApplyFederated

__all__ = ["FederatedSync"]

_log = logging.getLogger(__name__)


class FederatedSync:
    """One core's requests to federated Services; commands go to ``emit``."""

    def __init__(
        self, emit: Callable[[ApplyFederated], None], warn: Callable[[str, str], None]
    ) -> None:
        self._emit = emit
        self._warn = warn
        self._claims: dict[ObjectKey, tuple[federated.Claim, str]] = {}
        self._prunes: dict[ObjectKey, tuple[federated.Prune, str]] = {}
        self._conflicts: set[ObjectKey] = set()
        self.linked: frozenset[str] | None = None
        """Target clusters of the Links in the namespace; ``None`` until listed."""

    def set_linked(self, clusters: frozenset[str]) -> bool:
        """Record the Links' clusters; whether they changed."""
        changed = clusters != self.linked
        self.linked = clusters
        return changed

    def forget(self, key: ObjectKey) -> None:
        """What was asked for ``key`` failed: ask again when next reconciled."""
        self._claims.pop(key, None)
        self._prunes.pop(key, None)

    @staticmethod
    def _member(link: Link, svc: Service | None) -> Service | None:
        if svc is None or federated.is_federated(svc) or is_mirror(svc):
            return None
        return svc if link.federated_selector.matches(svc.labels) else None

    def reconcile(
        self,
        key: ObjectKey,
        link: Link,
        remote: Service | None,
        foreign: Mapping[ObjectKey, Service],
        namespaces: set[str],
    ) -> None:
        """Ask for a merge of ``link``'s claim on ``<key>-federated`` if it is not reflected.

        ``remote`` is the target's Service ``key``; ``foreign`` the local Services that are
        not this Link's mirrors."""
        try:
            fkey = federated.federated_key(key)
            naming.mirror_name(key.name, "federated")  # a valid Service name
        except naming.InvalidName:
            return
        remote_member = self._member(link, remote)
        local_member = self._member(link, foreign.get(key))
        observed = foreign.get(fkey)
        if observed is not None and not federated.is_federated(observed):
            if (remote_member or local_member) and fkey not in self._conflicts:
                self._conflicts.add(fkey)
                self._warn("NameConflict", f"local Service {fkey} exists and is not federated")
            return
        self._conflicts.discard(fkey)
        if remote_member is None and local_member is None and observed is None:
            self._claims.pop(fkey, None)
            return
        if self.linked is not None and link.target_cluster_name not in self.linked:
            return  # the Links listed lack ours (it is going): pruning, not claiming
        if key.namespace not in namespaces:
            return
        claim = federated.claim_for(key, link, remote_member, local_member)
        view = federated.view_of(observed) if observed is not None else None
        if federated.merge(view, claim) is view:
            return
        memo = (claim, observed.resource_version if observed is not None else "")
        if self._claims.get(fkey) != memo:
            self._claims[fkey] = memo
            self._emit(ApplyFederated(claim))

    def prune_all(self, foreign: Mapping[ObjectKey, Service]) -> None:
        for fkey in sorted(foreign):
            self.prune(fkey, foreign)

    def prune(self, fkey: ObjectKey, foreign: Mapping[ObjectKey, Service]) -> None:
        """Ask to prune ``fkey`` of entries no Link stands for, if it has any."""
        if self.linked is None:
            return
        observed = foreign.get(fkey)
        member = federated.member_key(fkey)
        if observed is None or member is None or not federated.is_federated(observed):
            self._prunes.pop(fkey, None)
            return
        view = federated.view_of(observed)
        if federated.prune(view, self.linked) is view:
            return
        op = federated.Prune(fkey.namespace, member.name, self.linked)
        memo = (op, observed.resource_version)
        if self._prunes.get(fkey) != memo:
            self._prunes[fkey] = memo
            stale = sorted(federated.stale_clusters(view, self.linked))
            _log.info("pruning %s: no Link targets %s", fkey, ", ".join(stale) or "any cluster")
            self._emit(ApplyFederated(op))
