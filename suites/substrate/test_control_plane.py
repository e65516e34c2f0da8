"""Substrate: the clusters really are upstream Kubernetes, at the pinned version, Ready."""

from __future__ import annotations

import pytest
from lightkube.resources.core_v1 import Node

from harness.kube import Kube


def test_api_server_reports_pinned_version_and_node_ready(kube: dict[str, Kube]) -> None:
    """(a) each API server reports the pinned version and its node is Ready."""
    for name, k in kube.items():
        r = k.http.get("/version")
        assert r.status_code == 200, f"[{name}] GET /version answered {r.status_code}: {r.text}"
        seen = r.json()["gitVersion"]
        assert seen == k.cluster.version, (
            f"[{name}] expected API server version {k.cluster.version}, /version says {seen}"
        )
        nodes = list(k.client.list(Node))
        assert nodes, f"[{name}] expected at least one Node, the API lists none"
        for n in nodes:
            ready = [c.status for c in (n.status.conditions or []) if c.type == "Ready"]
            assert ready == ["True"], (
                f"[{name}] expected node {n.metadata.name} Ready=True, conditions: "
                f"{[(c.type, c.status, c.reason) for c in n.status.conditions or []]}"
            )


@pytest.mark.requires(clusters=2)
def test_cluster_domains_are_distinct(kube: dict[str, Kube]) -> None:
    """Each cluster serves its own cluster domain (the premise of every multicluster test)."""
    domains = {name: k.cluster.domain for name, k in kube.items()}
    assert len(set(domains.values())) == len(domains), f"expected distinct domains: {domains}"
