"""Builders shared by the install, inject and check tests: rendered installs and their files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mesh.identity import create_anchor, create_issuer
from mesh.install import (
    IdentityMaterial,
    Values,
    WebhookCert,
    create_webhook_cert,
    generate_identity,
    render_install,
)
from mesh.install.controlplane import WEBHOOK_SERVICE

NOW = datetime.now(UTC)
"""Install tests run at the real time, since the CLI reads the real clock."""

Manifest = dict[str, Any]


def identity_for(values: Values, now: datetime = NOW) -> IdentityMaterial:
    return generate_identity(values.identity_trust_domain, values.control_plane_ns, now=now)


def webhook_for(values: Values, now: datetime = NOW) -> WebhookCert:
    return create_webhook_cert(
        WEBHOOK_SERVICE, values.control_plane_ns, values.cluster_domain, now=now
    )


def rendered(values: Values | None = None) -> list[Manifest]:
    """A complete install with generated credentials."""
    values = values or Values()
    return render_install(values, identity_for(values), webhook_for(values))


def find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def write_identity_files(
    directory: Path,
    trust_domain: str = "cluster.local",
    *,
    anchor_now: datetime = NOW,
    issuer_now: datetime = NOW,
    issuer_validity: timedelta = timedelta(days=365),
    other_anchor: bool = False,
) -> tuple[Path, Path, Path]:
    """ca.crt, issuer.crt, issuer.key as ``isthmus identity`` would write them."""
    anchor = create_anchor(trust_domain, now=anchor_now)
    signer = create_anchor(trust_domain, now=anchor_now) if other_anchor else anchor
    issuer = create_issuer(signer, trust_domain, now=issuer_now, validity=issuer_validity)
    paths = directory / "ca.crt", directory / "issuer.crt", directory / "issuer.key"
    paths[0].write_bytes(anchor.certificate_pem())
    paths[1].write_bytes(issuer.certificate_pem())
    paths[2].write_bytes(issuer.key_pem())
    return paths
