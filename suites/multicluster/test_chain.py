"""Multicluster chain: target exports to source, source exports to west; mirrors stop there.

On a three-cluster topology the shared links make the chain target -> source -> west
(``west`` mirrors ``source``). A mirror in ``source`` is never mirrored on to ``west``
- not even when someone labels the mirror itself for export - while a Service that
``source`` owns and exports reaches ``west`` (showing the second link works).
"""

from __future__ import annotations

import pytest

from fixtures.multicluster import Linked
from harness.reporting import Evidence
from suites.multicluster._support import (
    export_service,
    mirror,
    service,
    stays,
)

FEATURES = ["multicluster"]


@pytest.mark.requires(clusters=3)
@pytest.mark.conformance(
    short_name="mc-chain-no-remirror",
    description="In the chain target -> source -> west a mirror is never mirrored again: "
    "source's mirror of a target Service carries no export label (CONF-6) and does not "
    "appear in west even when labelled for export, while source's own exported Service "
    "does (CONF-1)",
    features=FEATURES,
    profile="multicluster",
    conf=["CONF-1", "CONF-6"],
)
def test_a_mirror_is_never_mirrored_again(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns = mc_namespace
    assert linked.link_to("source").source == "west", f"links: {linked.links}"
    export_service(linked, "target", ns, "origin")
    first = mirror(linked, "source", ns, "origin-target")
    labels = first["metadata"].get("labels") or {}
    assert "mirror.linkerd.io/exported" not in labels, (
        f"CONF-6: the mirror in source must not carry the export label; labels {labels}"
    )
    export_service(linked, "source", ns, "own")
    with evidence.step("source's own export reaches west"):
        mirror(linked, "west", ns, "own-source")
    with evidence.step("label the mirror itself for export"):
        linked.export("source", ns, "origin-target", "true")
    stays(
        "no mirror of a mirror (origin-target-source) in west",
        lambda: service(linked.kube["west"], ns, "origin-target-source") is None,
    )
