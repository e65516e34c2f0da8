"""Mesh: the control plane installs on every cluster and its own check passes."""

from __future__ import annotations

import pytest
from lightkube.resources.core_v1 import Namespace

from fixtures.mesh import Mesh
from harness.reporting import Evidence


@pytest.mark.conformance(
    short_name="mesh-install-check",
    description="The mesh installs on every cluster, one trust anchor shared and an issuer "
    "per cluster, and its own check passes on each (CONF-30, CONF-43)",
    features=["install", "check"],
    profile="mesh",
    conf=["CONF-30", "CONF-43"],
)
def test_install_then_check_passes(mesh: Mesh, evidence: Evidence) -> None:
    """(a) after install, `check` passes on every cluster."""
    issuers = {name: mesh.trust.issuer(name).cert.read_bytes() for name in mesh.clusters}
    assert len(set(issuers.values())) == len(issuers), (
        f"expected an issuer of its own per cluster; clusters {sorted(issuers)} share one "
        f"(files: {[str(mesh.trust.issuer(n).cert) for n in issuers]})"
    )
    for name, cluster in mesh.clusters.items():
        k = mesh.kube[name]
        for ns in mesh.adapter.control_plane_namespaces:
            k.client.get(Namespace, ns)  # raises (404) if the install made no namespace
        with evidence.step(f"{mesh.adapter.name} check on {name}"):
            result = mesh.adapter.check(cluster)
        evidence.record(
            "check",
            {"cluster": name, "success": result.success, "output": result.output[-10000:]},
        )
        assert result.success, (
            f"expected the mesh's check to pass on {name} after install; {result.describe()} "
            f"(full output in the evidence)"
        )
