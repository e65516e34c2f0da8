"""Snapshots of a cluster with a fresh install, built from the manifests install renders."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from mesh.check import ClusterSnapshot, DeploymentState
from mesh.crds import crds
from mesh.install import IdentityMaterial, Values, WebhookCert, render_install
from mesh.install.controlplane import DEPLOYMENTS, WEBHOOK_CONFIG
from tests.install.support import NOW, identity_for, webhook_for


def snapshot_of(
    docs: list[dict[str, Any]], *, now: datetime = NOW, namespace: str = "linkerd"
) -> ClusterSnapshot:
    """What ``fetch`` would read from a cluster where ``docs`` and the CRDs were applied."""
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {
        d["metadata"]["name"]: {k: base64.b64decode(v) for k, v in d["data"].items()}
        for d in docs
        if d["kind"] == "Secret"
    }
    bundles = {
        d["metadata"]["name"]: base64.b64decode(d["webhooks"][0]["clientConfig"]["caBundle"])
        for d in docs
        if d["kind"] == "MutatingWebhookConfiguration"
    }
    return ClusterSnapshot(
        now=now,
        control_plane_ns=namespace,
        server_version="v1.35.4",
        crds={
            c["metadata"]["name"]: tuple(v["name"] for v in c["spec"]["versions"]) for c in crds()
        },
        namespace_exists=True,
        deployments={name: DeploymentState(1, 1) for name in DEPLOYMENTS},
        config_maps=config_maps,
        secrets=secrets,
        webhook_ca_bundles=bundles,
    )


def healthy(
    identity: IdentityMaterial | None = None, webhook: WebhookCert | None = None
) -> ClusterSnapshot:
    values = Values()
    docs = render_install(values, identity or identity_for(values), webhook or webhook_for(values))
    snapshot = snapshot_of(docs)
    assert WEBHOOK_CONFIG in snapshot.webhook_ca_bundles
    return snapshot
