"""The ``multicluster`` commands' one seam to Kubernetes: read objects as plain mappings.

``Cluster`` is all the commands need: get one object, list objects by label,
and GET through the API server's pod proxy. ``connect`` opens the real one for a
``KubeTarget`` (the user's kubeconfig) or for a kubeconfig mapping (the
credentials ``link`` writes), over lightkube's configured HTTP client. Tests
replace ``connect`` with a fake holding manifests. A 404 on ``get`` is
``None``; anything else that goes wrong is a ``ClusterError`` whose message
says where and what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mesh.install.target import KubeTarget, TargetError

if TYPE_CHECKING:
    from lightkube.config.kubeconfig import SingleConfig

__all__ = [
    "CLUSTER_ROLE",
    "CLUSTER_ROLE_BINDING",
    "CONFIG_MAP",
    "CRD",
    "DEPLOYMENT",
    "ENDPOINTS",
    "KINDS",
    "LINK",
    "NAMESPACE",
    "POD",
    "ROLE",
    "ROLE_BINDING",
    "SECRET",
    "SERVICE",
    "SERVICE_ACCOUNT",
    "Cluster",
    "ClusterError",
    "Kind",
    "Manifest",
    "connect",
]

Manifest = dict[str, Any]

_TIMEOUT = 10.0
"""Seconds one request to an API server may take."""


@dataclass(frozen=True)
class Kind:
    """A resource type: what objects of it say (apiVersion, kind) and where they live."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        group = "api/v1" if self.api_version == "v1" else f"apis/{self.api_version}"
        path = f"/{group}"
        if self.namespaced and namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        return f"{path}/{name}" if name else path


NAMESPACE = Kind("v1", "Namespace", "namespaces", False)
SERVICE = Kind("v1", "Service", "services")
ENDPOINTS = Kind("v1", "Endpoints", "endpoints")
SECRET = Kind("v1", "Secret", "secrets")
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
POD = Kind("v1", "Pod", "pods")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
ROLE = Kind("rbac.authorization.k8s.io/v1", "Role", "roles")
ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings")
CLUSTER_ROLE = Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False)
CLUSTER_ROLE_BINDING = Kind(
    "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False
)
CRD = Kind(
    "apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False
)
LINK = Kind("multicluster.linkerd.io/v1alpha3", "Link", "links")
KINDS = {
    k.kind: k
    for k in (
        NAMESPACE, SERVICE, ENDPOINTS, SECRET, SERVICE_ACCOUNT, CONFIG_MAP, POD, DEPLOYMENT,
        ROLE, ROLE_BINDING, CLUSTER_ROLE, CLUSTER_ROLE_BINDING, CRD, LINK,
    )
}  # fmt: skip
"""Every kind above by its ``kind`` name."""


class ClusterError(Exception):
    """A request failed for another reason than "not found"; ``status`` is the HTTP code if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Cluster(Protocol):
    """Reads from one cluster's API server."""

    @property
    def server(self) -> str:
        """The API server's address, for messages."""
        ...

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Manifest | None: ...

    def list(
        self, kind: Kind, namespace: str | None = None, selector: str = ""
    ) -> list[Manifest]: ...

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET ``path`` on ``port`` of ``pod`` through the API server's pod proxy."""
        ...

    def close(self) -> None: ...


class _RawCluster:
    """``Cluster`` over lightkube's configured httpx client."""

    def __init__(self, config: SingleConfig) -> None:
        import httpx2
        from lightkube.config.client_adapter import Client as RawClient
        from lightkube.config.client_adapter import ConnectionParams

        self.server = config.cluster.server
        self._http = RawClient(config, ConnectionParams(timeout=httpx2.Timeout(_TIMEOUT)))

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        import httpx2

        try:
            response = self._http.get(path, params=dict(params or {}))
        except (httpx2.HTTPError, OSError) as e:
            raise ClusterError(
                f"cannot reach the API server at {self.server}: {e or type(e).__name__}"
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            status = f"{response.status_code} {response.reason_phrase}".strip()
            raise ClusterError(
                f"GET {path} on {self.server}: {status} {message}".strip(), response.status_code
            )
        return response

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Manifest | None:
        response = self._get(kind.path(namespace, name))
        return None if response is None else dict(response.json())

    def list(self, kind: Kind, namespace: str | None = None, selector: str = "") -> list[Manifest]:
        params = {"labelSelector": selector} if selector else {}
        response = self._get(kind.path(namespace), params)
        if response is None:
            raise ClusterError(
                f"{kind.plural}.{kind.api_version} is not served by {self.server}", 404
            )
        return [
            {"apiVersion": kind.api_version, "kind": kind.kind, **item}
            for item in response.json().get("items") or []
        ]

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        url = f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}"
        response = self._get(url)
        if response is None:
            raise ClusterError(f"pod {namespace}/{pod} does not serve {path} on port {port}", 404)
        return str(response.text)

    def close(self) -> None:
        self._http.close()


def connect(where: KubeTarget | Mapping[str, Any]) -> Cluster:
    """A ``Cluster`` for a kube target or a kubeconfig mapping; ``ClusterError`` if unusable."""
    if isinstance(where, KubeTarget):
        try:
            return _RawCluster(where.config())
        except TargetError as e:
            raise ClusterError(e.message) from None
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.core.exceptions import ConfigError

    try:
        single = KubeConfig.from_dict(dict(where)).get()
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise ClusterError(f"the kubeconfig cannot be used: {e}") from None
    if single is None:
        raise ClusterError("the kubeconfig has no current context")
    return _RawCluster(single)
