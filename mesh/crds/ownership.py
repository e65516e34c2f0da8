"""Whose CRDs are whose: what ``install --crds`` may apply and ``uninstall`` may delete (SEC-5).

Pure decisions from the CRDs the mesh ships and what the cluster already has
(``Existing``: a CRD's name, labels and annotations). Rules:
- A CRD the mesh created carries ``linkerd.io/control-plane-ns=<ns>``
  (``MESH_LABEL``); only such CRDs are the mesh's.
- Absent: create it, labelled as the mesh's.
- The mesh's own: apply ours (an upgrade, or the same again).
- Another owner's Gateway API CRD (``gateway.networking.k8s.io/bundle-version``)
  older than ours: apply ours *without* the mesh's label (upstream bundles only
  grow their schemas; the CRD stays its owner's, so uninstall leaves it).
- Another owner's CRD of the same or a newer bundle, with no bundle version, or of
  a mesh group (a Linkerd install, another control-plane namespace): leave it as
  it is, and say so.
- ``uninstall`` deletes only the mesh's CRDs and names every one it leaves.
- Without a view of the cluster (``--ignore-cluster``) install applies every
  CRD as the mesh's and uninstall deletes none, saying so.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "BUNDLE_VERSION",
    "MESH_LABEL",
    "Action",
    "Decision",
    "Existing",
    "bundle_version",
    "decide",
    "plan_deletes",
    "plan_install",
]

MESH_LABEL = "linkerd.io/control-plane-ns"
BUNDLE_VERSION = "gateway.networking.k8s.io/bundle-version"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")

Manifest = dict[str, Any]


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    """The mesh's own CRD, applied again."""
    UPGRADE_FOREIGN = "upgrade-foreign"
    """Another owner's older Gateway API CRD, raised to ours and left theirs."""
    LEAVE = "leave"


@dataclass(frozen=True)
class Existing:
    """A CRD as the cluster has it (only what ownership depends on)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Existing:
        meta = manifest.get("metadata") or {}
        return cls(
            meta["name"], dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})
        )


@dataclass(frozen=True)
class Decision:
    name: str
    action: Action
    reason: str


def bundle_version(annotations: Mapping[str, str]) -> tuple[int, int, int, int] | None:
    """The Gateway API bundle version as a sortable tuple (a pre-release sorts first)."""
    text = annotations.get(BUNDLE_VERSION, "").strip()
    match = _VERSION.match(text)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    return (int(major), int(minor), int(patch), 0 if pre else 1)


def _mine(existing: Existing, control_plane_ns: str) -> bool:
    return existing.labels.get(MESH_LABEL) == control_plane_ns


def decide(ours: Manifest, existing: Existing | None, control_plane_ns: str) -> Decision:
    """What to do with the CRD ``ours`` given the cluster's copy (see the module docstring)."""
    name = ours["metadata"]["name"]
    if existing is None:
        return Decision(name, Action.CREATE, "absent")
    mine = bundle_version(ours["metadata"].get("annotations") or {})
    theirs = bundle_version(existing.annotations)
    if _mine(existing, control_plane_ns):
        if mine is not None and theirs is not None and theirs > mine:
            newer = existing.annotations[BUNDLE_VERSION]
            return Decision(name, Action.LEAVE, f"the mesh's, but raised to {newer} since: kept")
        return Decision(
            name, Action.UPDATE, f"created by the mesh ({MESH_LABEL}={control_plane_ns})"
        )
    owner = existing.labels.get(MESH_LABEL)
    whose = f"the control plane in {owner}" if owner else "another owner"
    if mine is None:
        return Decision(name, Action.LEAVE, f"installed by {whose}")
    if theirs is None:
        return Decision(
            name, Action.LEAVE, f"installed by {whose}, with no {BUNDLE_VERSION} to compare"
        )
    ours_text = ours["metadata"]["annotations"][BUNDLE_VERSION]
    theirs_text = existing.annotations[BUNDLE_VERSION]
    if theirs < mine:
        return Decision(
            name,
            Action.UPGRADE_FOREIGN,
            f"installed by {whose} at {theirs_text}, older than {ours_text}: upgraded, left theirs",
        )
    return Decision(
        name, Action.LEAVE, f"installed by {whose} at {theirs_text} (not older than {ours_text})"
    )


def _foreign(ours: Manifest) -> Manifest:
    doc = copy.deepcopy(ours)
    labels = doc["metadata"].get("labels") or {}
    labels.pop(MESH_LABEL, None)
    if labels:
        doc["metadata"]["labels"] = labels
    else:
        doc["metadata"].pop("labels", None)
    return doc


def plan_install(
    ours: Iterable[Manifest], existing: Mapping[str, Existing] | None, control_plane_ns: str
) -> tuple[list[Manifest], list[Decision]]:
    """The CRDs to apply and every decision; ``existing=None``: no view of the cluster."""
    docs: list[Manifest] = []
    decisions: list[Decision] = []
    for doc in ours:
        name = doc["metadata"]["name"]
        if existing is None:
            decision = Decision(name, Action.CREATE, "cluster not consulted (--ignore-cluster)")
        else:
            decision = decide(doc, existing.get(name), control_plane_ns)
        decisions.append(decision)
        if decision.action in (Action.CREATE, Action.UPDATE):
            docs.append(doc)
        elif decision.action is Action.UPGRADE_FOREIGN:
            docs.append(_foreign(doc))
    return docs, decisions


def plan_deletes(
    names: Iterable[str], existing: Mapping[str, Existing] | None, control_plane_ns: str
) -> tuple[list[str], list[str]]:
    """The CRDs ``uninstall`` deletes, and a note for each it leaves."""
    deletes: list[str] = []
    notes: list[str] = []
    for name in names:
        if existing is None:
            notes.append(f"left CRD {name}: cluster not consulted (--ignore-cluster)")
            continue
        found = existing.get(name)
        if found is None:
            continue
        if _mine(found, control_plane_ns):
            deletes.append(name)
        else:
            owner = found.labels.get(MESH_LABEL)
            whose = f"the control plane in {owner}" if owner else "another owner"
            notes.append(f"left CRD {name}: not created by this mesh (installed by {whose})")
    return deletes, notes
