"""Security: the mesh never replaces or deletes a CRD another owner installed (SEC-5).

On the installed mesh's cluster the Gateway API HTTPRoute CRD is handed to another
owner (the mesh's label taken off, an ``app.kubernetes.io/managed-by`` label and a
bundle version set), then ``install --crds`` is run against the cluster and applied,
and ``uninstall`` is asked what it would delete (nothing is deleted):
- the other owner's CRD at an *older* bundle is raised to the mesh's upstream one and
  stays theirs (no mesh label, their label kept);
- at a *newer* bundle it is left untouched, and install says so;
- ``uninstall`` never names it and says it leaves it, while it still names the
  mesh's own CRDs.
The CRD's labels and annotations are restored afterwards. Only metadata changes, so
HTTPRoutes in the cluster are untouched throughout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from fixtures.mesh import Mesh
from harness.adapters.isthmus import CrdOutcome
from harness.kube import Kube
from harness.reporting import Evidence
from harness.settings import TIMEOUTS

GATEWAY_CRD = "httproutes.gateway.networking.k8s.io"
MESH_LABEL = "linkerd.io/control-plane-ns"
BUNDLE = "gateway.networking.k8s.io/bundle-version"
OWNER = {"app.kubernetes.io/managed-by": "another-gateway-controller"}


def _meta(k: Kube) -> tuple[dict[str, str], dict[str, str]]:
    crd = k.client.get(CustomResourceDefinition, GATEWAY_CRD)
    assert crd.metadata is not None
    return dict(crd.metadata.labels or {}), dict(crd.metadata.annotations or {})


def _patch(k: Kube, labels: dict[str, Any], annotations: dict[str, Any]) -> None:
    # A merge patch of metadata only; a CRD this large may take the API server a while
    # (its whole schema is re-validated), hence the longer, named wait.
    body = {"metadata": {"labels": labels, "annotations": annotations}}
    r = k.http.patch(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{GATEWAY_CRD}",
        content=json.dumps(body),
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=TIMEOUTS.mesh_command,
    )
    assert r.status_code == 200, f"[{k.name}] patching {GATEWAY_CRD}: {r.status_code} {r.text}"


@pytest.fixture
def handed_over(mesh: Mesh) -> Iterator[Kube]:
    """The Gateway API CRD, given to another owner for the test, then given back."""
    k = mesh.kube[mesh.primary]
    labels, annotations = _meta(k)
    try:
        yield k
    finally:
        # Give it back as it was: keys we added go (None), the originals return.
        now_labels, now_annotations = _meta(k)
        _patch(
            k,
            {key: labels.get(key) for key in {*now_labels, *labels}},
            {key: annotations.get(key) for key in {*now_annotations, *annotations}},
        )


def _adapter_calls(mesh: Mesh) -> tuple[Any, Any]:
    apply_crds = getattr(mesh.adapter, "apply_crds", None)
    uninstall_crds = getattr(mesh.adapter, "uninstall_crds", None)
    if apply_crds is None or uninstall_crds is None:
        pytest.skip(f"mesh {mesh.adapter.name} cannot show which CRDs it installs and deletes")
    return apply_crds, uninstall_crds


@pytest.mark.conformance(
    short_name="security-crds-of-other-owners",
    description="install --crds raises another owner's older Gateway API CRD to the mesh's "
    "upstream bundle without taking it over, leaves a newer one untouched and says so; "
    "uninstall never names a CRD the mesh did not create and says which it leaves (SEC-5)",
    features=["install"],
    profile="security",
    conf=["SEC-5"],
)
def test_crds_of_another_owner_are_never_replaced_or_deleted(
    mesh: Mesh, handed_over: Kube, evidence: Evidence
) -> None:
    apply_crds, uninstall_crds = _adapter_calls(mesh)
    k, c = handed_over, mesh.primary
    cluster = mesh.clusters[c]

    with evidence.step("hand the Gateway API CRD to another owner at an older bundle"):
        _patch(k, {MESH_LABEL: None, **OWNER}, {BUNDLE: "v0.5.0"})
        older: CrdOutcome = apply_crds(cluster)
    evidence.record("install --crds over an older foreign CRD", older.notes)
    labels, annotations = _meta(k)
    assert GATEWAY_CRD in older.names, (
        f"expected install --crds to raise the other owner's {GATEWAY_CRD} at v0.5.0; "
        f"it printed {older.names} and said {older.notes!r}"
    )
    assert annotations.get(BUNDLE, "v0.5.0") != "v0.5.0", (
        f"expected {GATEWAY_CRD} to carry the mesh's bundle after apply; it has {annotations}"
    )
    assert MESH_LABEL not in labels, f"the mesh took over {GATEWAY_CRD}: labels {labels}"
    assert labels.get("app.kubernetes.io/managed-by") == OWNER["app.kubernetes.io/managed-by"]
    raised_to = annotations[BUNDLE]

    with evidence.step("the other owner moves to a newer bundle"):
        _patch(k, {}, {BUNDLE: "v99.0.0"})
        newer: CrdOutcome = apply_crds(cluster)
    evidence.record("install --crds over a newer foreign CRD", newer.notes)
    assert GATEWAY_CRD not in newer.names, (
        f"expected install --crds to leave the other owner's newer {GATEWAY_CRD} alone; "
        f"it printed it (notes: {newer.notes!r})"
    )
    assert GATEWAY_CRD in newer.notes, f"expected install to say it left {GATEWAY_CRD}"
    _, annotations = _meta(k)
    assert annotations.get(BUNDLE) == "v99.0.0", f"the newer CRD was changed: {annotations}"

    gone: CrdOutcome = uninstall_crds(cluster)
    evidence.record("uninstall", {"names": list(gone.names), "notes": gone.notes})
    assert GATEWAY_CRD not in gone.names, (
        f"expected uninstall never to name the other owner's {GATEWAY_CRD}; it names {gone.names}"
    )
    assert GATEWAY_CRD in gone.notes, f"expected uninstall to say it leaves {GATEWAY_CRD}"
    assert any(name.endswith(".policy.linkerd.io") for name in gone.names), (
        f"expected uninstall still to name the mesh's own CRDs; it names {gone.names}"
    )
    evidence.record("raised to", raised_to)
