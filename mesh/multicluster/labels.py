"""The multicluster API's names: labels, annotations, objects and ports (Linkerd's own).

One copy of each name, imported by the mirror controller, destination, the gateway,
``multicluster`` commands and ``check``. Names are Linkerd's so that manifests and
scripts written for Linkerd's multicluster extension apply unchanged.
"""

from __future__ import annotations

from typing import Final

# -- on exported Services of the target cluster ------------------------------------------------
EXPORTED: Final = "mirror.linkerd.io/exported"
"""Label: ``true`` (gateway mode) or ``remote-discovery`` (pod-to-pod)."""
EXPORTED_GATEWAY: Final = "true"
EXPORTED_REMOTE_DISCOVERY: Final = "remote-discovery"
FEDERATED: Final = "mirror.linkerd.io/federated"
"""Label: ``member`` joins the Service to ``<svc>-federated`` in linked clusters."""
FEDERATED_MEMBER: Final = "member"

# -- on mirrors in the source cluster ----------------------------------------------------------
PREFIX: Final = "mirror.linkerd.io/"
"""Remote labels under this prefix are never copied, so a mirror is never re-exported."""
MIRRORED_SERVICE: Final = "mirror.linkerd.io/mirrored-service"
"""Label ``true`` on every mirror Service (and its Endpoints)."""
CLUSTER_NAME: Final = "mirror.linkerd.io/cluster-name"
"""Label: the Link's target cluster name, on mirrors and on per-link objects."""
REMOTE_RESOURCE_VERSION: Final = "mirror.linkerd.io/remote-resource-version"
REMOTE_SVC_FQ_NAME: Final = "mirror.linkerd.io/remote-svc-fq-name"
"""``<svc>.<ns>.svc.<target cluster domain>``: the authority the gateway routes."""
REMOTE_GATEWAY_IDENTITY: Final = "mirror.linkerd.io/remote-gateway-identity"
"""Annotation on gateway-mode mirror Endpoints: the identity the gateway presents."""
HEADLESS_MIRROR_SVC_NAME: Final = "mirror.linkerd.io/headless-mirror-svc-name"
REMOTE_DISCOVERY: Final = "multicluster.linkerd.io/remote-discovery"
"""Label ``<cluster>`` on a pod-to-pod mirror; annotation ``svc@cluster,...`` on federated."""
LOCAL_DISCOVERY: Final = "multicluster.linkerd.io/local-discovery"
REMOTE_SERVICE: Final = "multicluster.linkerd.io/remote-service"

TOPOLOGY_ANNOTATIONS: Final = (
    "service.kubernetes.io/topology-aware-hints",
    "service.kubernetes.io/topology-mode",
)
"""Never copied to a mirror (CONF-7)."""

# -- objects --------------------------------------------------------------------------------
NAMESPACE: Final = "linkerd-multicluster"
GATEWAY_NAME: Final = "linkerd-gateway"
"""The gateway's Deployment, Service and ServiceAccount in ``NAMESPACE``."""
GATEWAY_PORT_NAME: Final = "mc-gateway"
GATEWAY_PORT: Final = 4143
PROBE_PORT_NAME: Final = "mc-probe"
PROBE_PORT: Final = 4191
PROBE_PATH: Final = "/ready"
ENABLE_GATEWAY: Final = "config.linkerd.io/enable-gateway"
"""Pod annotation ``"true"``: the injected proxy routes mTLS requests for local services."""
REMOTE_ACCESS_SA: Final = "linkerd-service-mirror-remote-access-default"
"""The ServiceAccount whose token ``link`` hands to the other cluster."""
CREDENTIALS_SECRET_TYPE: Final = "mirror.linkerd.io/remote-kubeconfig"
CREDENTIALS_KEY: Final = "kubeconfig"
MIRROR_METRICS_PORT: Final = 9999


def credentials_secret_name(link: str) -> str:
    """The Secret holding the kubeconfig a Link's controller uses for the target."""
    return f"cluster-credentials-{link}"


def service_mirror_name(link: str) -> str:
    """The Deployment, ServiceAccount and RBAC names of a Link's mirror controller."""
    return f"linkerd-service-mirror-{link}"


def mirror_service_name(service: str, cluster: str) -> str:
    """``<svc>-<cluster>``: the mirror of ``service`` exported by ``cluster`` (CONF-1)."""
    return f"{service}-{cluster}"


def federated_service_name(service: str) -> str:
    return f"{service}-federated"


# -- on the gateway Service, read by ``multicluster link`` -------------------------------------
GATEWAY_IDENTITY: Final = "mirror.linkerd.io/gateway-identity"
PROBE_PATH_ANNOTATION: Final = "mirror.linkerd.io/probe-path"
PROBE_PERIOD_ANNOTATION: Final = "mirror.linkerd.io/probe-period"
"""Seconds between probes (``"3"``); the Link carries it as a duration (``"3s"``)."""

# -- the extension's own objects ---------------------------------------------------------------
EXTENSION: Final = "linkerd.io/extension"
"""Label ``multicluster`` on everything ``multicluster install`` and ``allow`` create."""
EXTENSION_NAME: Final = "multicluster"
COMPONENT: Final = "component"
SERVICE_MIRROR_COMPONENT: Final = "linkerd-service-mirror"
"""``component`` label value of every Link's mirror-controller Deployment and pods."""
MIRROR_ADMIN_PORT_NAME: Final = "admin-http"


def token_secret_name(service_account: str) -> str:
    """The long-lived token Secret ``install``/``allow`` create for a remote-access account."""
    return f"{service_account}-token"
