"""The CustomResourceDefinitions the mesh serves, shipped as YAML package data.

One file per API group (``<group>.yaml``), but for the Gateway API, whose CRDs
are upstream's own files, pinned (``mesh.crds.gateway_api``); ``crds()`` returns
their documents with the ``linkerd.io/control-plane-ns`` label set to the
control-plane namespace (the mark of a CRD the mesh created; see
``mesh.crds.ownership`` for when install and uninstall may touch one).
``REQUIRED`` lists every CRD name with the versions it must serve, which is
what ``isthmus check`` looks for.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import yaml

from mesh.crds import gateway_api

__all__ = ["GROUPS", "REQUIRED", "crds"]

GROUPS = (
    "policy.linkerd.io",
    "split.smi-spec.io",
    "multicluster.linkerd.io",
    "gateway.networking.k8s.io",
)
"""The API groups whose CRDs ``isthmus install --crds`` prints, in that order."""

REQUIRED: dict[str, tuple[str, ...]] = {
    "servers.policy.linkerd.io": ("v1beta1", "v1beta3"),
    "serverauthorizations.policy.linkerd.io": ("v1beta1",),
    "authorizationpolicies.policy.linkerd.io": ("v1alpha1",),
    "meshtlsauthentications.policy.linkerd.io": ("v1alpha1",),
    "networkauthentications.policy.linkerd.io": ("v1alpha1",),
    "httproutes.policy.linkerd.io": ("v1beta3",),
    "trafficsplits.split.smi-spec.io": ("v1alpha1", "v1alpha2"),
    "links.multicluster.linkerd.io": ("v1alpha1",),
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


def crds(control_plane_ns: str = "linkerd") -> list[dict[str, Any]]:
    """Every CRD document, labelled for ``control_plane_ns``; callers may modify them."""
    docs: list[dict[str, Any]] = []
    for group in GROUPS:
        for doc in _load(group):
            crd = copy.deepcopy(doc)
            crd["metadata"].setdefault("labels", {})[_CONTROL_PLANE_NS_LABEL] = control_plane_ns
            docs.append(crd)
    return docs
