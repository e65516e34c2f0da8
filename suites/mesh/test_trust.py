"""Mesh: a meshed server accepts peers under the shared trust anchor and refuses others.

The host plays a meshed client: it connects to the server pod's application port (the
pod's redirection hands the connection to the proxy's inbound side) with mTLS, SNI
naming the server's identity, and a client certificate made here. The control leaf is
signed by this cluster's real issuer; the rogue leaf names the same identity under a
second anchor and issuer made with the mesh's own identity tooling. Only the anchor
differs between the two.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.mesh import Mesh
from harness.reporting import Evidence
from suites.mesh._certs import leaf, tls_get
from suites.mesh._support import deploy_server, require_pod_network

APP_PORT = 8080


@pytest.mark.conformance(
    short_name="mesh-foreign-anchor-refused",
    description="A meshed server's proxy completes mTLS with a client certificate chaining "
    "to the shared anchor (and presents its own workload certificate from the cluster's "
    "issuer, named for its identity) but refuses the same identity certified under "
    "another trust anchor (CONF-30, CONF-32)",
    features=["injection", "mtls"],
    profile="mesh",
    conf=["CONF-30", "CONF-32"],
)
def test_peer_certificate_from_another_anchor_is_refused(
    mesh: Mesh, meshed_namespace: str, evidence: Evidence, tmp_path: Path
) -> None:
    """(e) mTLS from a leaf under another anchor is refused; the same under ours succeeds."""
    c, ns = mesh.primary, meshed_namespace
    require_pod_network(mesh, c)
    cluster = mesh.clusters[c]
    (server,) = deploy_server(mesh, ns, c, replicas=1)
    ip = server.status.podIP if server.status else None
    assert ip, f"expected the server pod to have an IP: {server.status}"
    client_id = mesh.identity(c, ns, "default")
    server_id = mesh.identity(c, ns, "server")

    good = leaf(mesh.trust.issuer(c), client_id, tmp_path / "good")
    rogue_trust = mesh.adapter.create_trust([cluster], tmp_path / "rogue-trust")
    rogue = leaf(rogue_trust.issuer(c), client_id, tmp_path / "rogue")

    with evidence.step("mTLS with a leaf under the shared anchor"):
        control = tls_get(ip, APP_PORT, good, server_id, mesh.trust.anchor_cert)
    evidence.record("control", control.describe())
    assert control.status == 200, (
        f"expected the server proxy at {ip}:{APP_PORT} to accept mTLS from {client_id} "
        f"certified by {c}'s issuer ({mesh.trust.issuer(c).cert}) and answer 200; "
        f"saw {control.describe()}"
    )
    assert control.server_chain == (server_id,), (
        f"expected the server's certificate to name exactly {server_id} (CONF-30); "
        f"it names {control.server_chain}"
    )
    assert (control.body or {}).get("client_id") == client_id, (
        f"expected the server to see client identity {client_id}; it answered {control.body}"
    )

    with evidence.step("mTLS with the same identity under another anchor"):
        refused = tls_get(ip, APP_PORT, rogue, server_id, mesh.trust.anchor_cert)
    evidence.record("rogue", refused.describe())
    assert refused.status is None, (
        f"expected the server proxy at {ip}:{APP_PORT} to refuse a client certificate for "
        f"{client_id} under a foreign anchor ({rogue_trust.anchor_cert}); it answered "
        f"{refused.describe()}"
    )
