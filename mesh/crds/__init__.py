"""The CustomResourceDefinitions the mesh serves, shipped as YAML package data.

One file per API group (``<group>.yaml``), but for the Gateway API, whose CRDs
are upstream's own files, pinned (``mesh.crds.gateway_api``); ``crds()`` returns
their documents with the ``linkerd.io/control-plane-ns`` label set to the
control-plane namespace (the mark of a CRD the mesh created; see
``mesh.crds.ownership`` for when install and uninstall may touch one).
``REQUIRED`` lists every CRD name with the versions it must serve, which is
what ``isthmus check`` looks for.

The Link CRD belongs to the multicluster extension, as in Linkerd: ``install
--crds`` prints ``GROUPS`` only, ``multicluster install`` prints ``link_crd()``,
and ``check --multicluster`` looks for ``LINK_CRD``.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import yaml

from mesh.crds import gateway_api

__all__ = ["ALL_GROUPS", "GROUPS", "LINK_CRD", "LINK_VERSIONS", "REQUIRED", "crds", "link_crd"]

GROUPS = (
    "policy.linkerd.io",
    "split.smi-spec.io",
    "gateway.networking.k8s.io",
)
"""The API groups whose CRDs ``isthmus install --crds`` prints, in that order."""
MULTICLUSTER_GROUP = "multicluster.linkerd.io"
ALL_GROUPS = (*GROUPS, MULTICLUSTER_GROUP)
"""Every group shipped, the multicluster extension's included."""
LINK_CRD = "links.multicluster.linkerd.io"
LINK_VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3")
"""The Link versions served; v1alpha3 is stored and is what ``multicluster link`` writes."""

REQUIRED: dict[str, tuple[str, ...]] = {
    "servers.policy.linkerd.io": ("v1beta1", "v1beta3"),
    "serverauthorizations.policy.linkerd.io": ("v1beta1",),
    "authorizationpolicies.policy.linkerd.io": ("v1alpha1",),
    "meshtlsauthentications.policy.linkerd.io": ("v1alpha1",),
    "networkauthentications.policy.linkerd.io": ("v1alpha1",),
    "httproutes.policy.linkerd.io": ("v1beta3",),
    "trafficsplits.split.smi-spec.io": ("v1alpha1", "v1alpha2"),
    "httproutes.gateway.networking.k8s.io": ("v1",),
}
"""CRD name -> the versions the mesh and the seeds' manifests use."""

_CONTROL_PLANE_NS_LABEL = "linkerd.io/control-plane-ns"


@cache
def _load(group: str) -> tuple[dict[str, Any], ...]:
    if group == gateway_api.GROUP:
        return tuple(_upstream(doc) for doc in gateway_api.load())
    text = resources.files(__name__).joinpath(f"{group}.yaml").read_text(encoding="utf-8")
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def _upstream(doc: dict[str, Any]) -> dict[str, Any]:
    # controller-gen writes ``creationTimestamp: null`` and an empty status; neither is ours
    # to apply.
    doc["metadata"].pop("creationTimestamp", None)
    doc.pop("status", None)
    return doc


def crds(
    control_plane_ns: str = "linkerd", groups: tuple[str, ...] = GROUPS
) -> list[dict[str, Any]]:
    """The CRDs of ``groups``, labelled for ``control_plane_ns``; callers may modify them."""
    docs: list[dict[str, Any]] = []
    for group in groups:
        for doc in _load(group):
            crd = copy.deepcopy(doc)
            crd["metadata"].setdefault("labels", {})[_CONTROL_PLANE_NS_LABEL] = control_plane_ns
            docs.append(crd)
    return docs


def link_crd(control_plane_ns: str = "linkerd") -> dict[str, Any]:
    """The Link CRD, as ``multicluster install`` prints it."""
    (crd,) = crds(control_plane_ns, (MULTICLUSTER_GROUP,))
    return crd
