"""Reading a cluster into a ``ClusterSnapshot``: the only part of ``check`` that does I/O.

A handful of lightkube reads, each object by name in the control-plane
namespace. A 404 means "absent"; any other API or connection error stops the
fetch and is reported as the API being unusable (with the server's message),
since the checks after it could only guess.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import httpx2
from lightkube import ApiError, Client
from lightkube.config.client_adapter import Client as RawClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SingleConfig
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret

from mesh.check.checks import PRE_ACCESS
from mesh.check.snapshot import Access, ClusterSnapshot, DeploymentState
from mesh.crds import REQUIRED
from mesh.install.controlplane import (
    CONFIG_MAP,
    ISSUER_SECRET,
    TRUST_ROOTS_CONFIG_MAP,
    WEBHOOK_CONFIG,
    WEBHOOK_NAME,
    WEBHOOK_SECRET,
)

__all__ = ["fetch_snapshot", "server_version"]

T = TypeVar("T")

_TIMEOUT = 10.0
"""Seconds the /version request may take."""


def server_version(config: SingleConfig) -> str:
    """The API server's ``gitVersion`` (lightkube has no call for ``/version``)."""
    with RawClient(config, ConnectionParams(timeout=httpx2.Timeout(_TIMEOUT))) as raw:
        response = raw.get("/version")
        response.raise_for_status()
        return str(response.json().get("gitVersion", ""))


def _maybe(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except ApiError as e:
        if e.status.code == 404:
            return None
        raise


def _can(client: Client, access: Access) -> bool:
    attributes = ResourceAttributes(
        verb=access.verb,
        group=access.group,
        resource=access.resource,
        namespace=access.namespace or None,
    )
    review = client.create(
        SelfSubjectAccessReview(spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes))
    )
    return bool(review.status and review.status.allowed)


def _decoded(secret: Secret) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _ca_bundle(config: MutatingWebhookConfiguration) -> bytes:
    for webhook in config.webhooks or []:
        if webhook.name == WEBHOOK_NAME and webhook.clientConfig.caBundle:
            return base64.b64decode(webhook.clientConfig.caBundle)
    return b""


def _install_state(client: Client, ns: str, now: datetime, version: str) -> ClusterSnapshot:
    crds = {}
    for crd in client.list(CustomResourceDefinition):
        name = crd.metadata.name if crd.metadata else None
        if name in REQUIRED:
            crds[name] = tuple(v.name for v in crd.spec.versions if v.served)
    deployments = {}
    for deploy in client.list(Deployment, namespace=ns):
        if deploy.metadata and deploy.metadata.name:
            desired = (
                deploy.spec.replicas if deploy.spec and deploy.spec.replicas is not None else 1
            )
            ready = (deploy.status.readyReplicas if deploy.status else None) or 0
            deployments[deploy.metadata.name] = DeploymentState(desired, ready)
    config_maps = {}
    for name in (CONFIG_MAP, TRUST_ROOTS_CONFIG_MAP):
        cm = _maybe(lambda name=name: client.get(ConfigMap, name, namespace=ns))  # type: ignore[misc]
        if cm is not None:
            config_maps[name] = dict(cm.data or {})
    secrets = {}
    for name in (ISSUER_SECRET, WEBHOOK_SECRET):
        secret = _maybe(lambda name=name: client.get(Secret, name, namespace=ns))  # type: ignore[misc]
        if secret is not None:
            secrets[name] = _decoded(secret)
    webhook = _maybe(lambda: client.get(MutatingWebhookConfiguration, WEBHOOK_CONFIG))
    return ClusterSnapshot(
        now=now,
        control_plane_ns=ns,
        server_version=version,
        crds=crds,
        namespace_exists=_maybe(lambda: client.get(Namespace, ns)) is not None,
        deployments=deployments,
        config_maps=config_maps,
        secrets=secrets,
        webhook_ca_bundles={WEBHOOK_CONFIG: _ca_bundle(webhook)} if webhook else {},
    )


def fetch_snapshot(
    client: Client,
    version: Callable[[], str],
    *,
    control_plane_ns: str,
    pre: bool,
    now: datetime,
) -> ClusterSnapshot:
    """Read what ``check`` (or, if ``pre``, ``check --pre``) needs from the cluster."""
    try:
        git_version = version()
        if not pre:
            return _install_state(client, control_plane_ns, now, git_version)
        access = {access: _can(client, access) for access in PRE_ACCESS}
        try:
            exists: bool | None = (
                _maybe(lambda: client.get(Namespace, control_plane_ns)) is not None
            )
        except ApiError as e:
            if e.status.code != 403:
                raise
            exists = None  # not allowed to look: the access checks will say so
        return ClusterSnapshot(
            now=now,
            control_plane_ns=control_plane_ns,
            server_version=git_version,
            namespace_exists=exists,
            access=access,
        )
    except (ApiError, httpx2.HTTPError, OSError) as e:
        return ClusterSnapshot(
            now=now, control_plane_ns=control_plane_ns, api_error=str(e) or type(e).__name__
        )
