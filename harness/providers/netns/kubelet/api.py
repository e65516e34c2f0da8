"""The kubelet's only door to the API server: :class:`KubeApi` and its lightkube edge.

Everything above this module speaks :mod:`.kobjects` dictionaries; unit tests stand
a fake in for :class:`KubeApi`. Not-found is an answer (None / ``False``), not an
error; other API failures raise :class:`ApiUnavailable` and callers retry.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol, cast

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.config.client_adapter import AsyncClient as RawClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import KubeConfig
from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Pod,
    PodStatus,
    Secret,
    Service,
    ServiceAccountToken,
)
from lightkube.types import PatchType

from harness.providers.netns.kubelet.kobjects import JsonDict
from harness.providers.netns.kubelet.kobjects import Pod as PodDict

log = logging.getLogger(__name__)


class ApiUnavailable(Exception):
    """An API call failed for a reason other than not-found; retry later."""


class KubeApi(Protocol):
    async def get_configmap(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    async def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        seconds: int,
        pod_name: str,
        pod_uid: str,
    ) -> tuple[str, float]:
        """A bound service-account token and its expiry (epoch seconds)."""
        ...

    async def kubernetes_service(self) -> tuple[str, int] | None:
        """ClusterIP and https port of ``default/kubernetes``."""
        ...

    async def patch_pod_status(self, namespace: str, name: str, status: JsonDict) -> bool:
        """Merge-patch the status subresource; False when the pod is gone."""
        ...

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Delete with grace 0 and a uid precondition; fine if already gone."""
        ...

    async def create_event(self, namespace: str, event: JsonDict) -> None: ...


def _not_found(e: ApiError) -> bool:
    return e.status.code == 404


class LightkubeApi:
    """:class:`KubeApi` over lightkube (plus a raw client for what it lacks)."""

    def __init__(self, config: KubeConfig) -> None:
        self.client = AsyncClient(
            config, field_manager="isthmus-kubelet", timeout=httpx2.Timeout(15.0)
        )
        single = config.get()
        assert single is not None, "kubeconfig has no current context"
        self.raw = RawClient(single, ConnectionParams(timeout=httpx2.Timeout(15.0)))

    async def close(self) -> None:
        await self.client.close()
        await self.raw.aclose()

    async def server_version(self) -> str:
        resp = await self.raw.get("/version")
        resp.raise_for_status()
        return str(resp.json().get("gitVersion", "v0.0.0"))

    async def get_configmap(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            cm = await self.client.get(ConfigMap, name, namespace=namespace)
        except ApiError as e:
            if _not_found(e):
                return None
            raise ApiUnavailable(str(e)) from e
        except httpx2.HTTPError as e:
            raise ApiUnavailable(str(e)) from e
        out = {k: v.encode() for k, v in (cm.data or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (cm.binaryData or {}).items()})
        return out

    async def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            sec = await self.client.get(Secret, name, namespace=namespace)
        except ApiError as e:
            if _not_found(e):
                return None
            raise ApiUnavailable(str(e)) from e
        except httpx2.HTTPError as e:
            raise ApiUnavailable(str(e)) from e
        return {k: base64.b64decode(v) for k, v in (sec.data or {}).items()}

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        seconds: int,
        pod_name: str,
        pod_uid: str,
    ) -> tuple[str, float]:
        request = ServiceAccountToken(
            metadata=ObjectMeta(),
            spec=TokenRequestSpec(
                audiences=[audience] if audience else [],
                expirationSeconds=seconds,
                boundObjectRef=BoundObjectReference(
                    kind="Pod", apiVersion="v1", name=pod_name, uid=pod_uid
                ),
            ),
        )
        try:
            result = await self.client.create(request, service_account, namespace=namespace)
        except (ApiError, httpx2.HTTPError) as e:
            raise ApiUnavailable(f"TokenRequest for {namespace}/{service_account}: {e}") from e
        status = result.status
        assert status is not None
        expiry = status.expirationTimestamp
        return status.token, (expiry.timestamp() if isinstance(expiry, datetime) else 0.0)

    async def kubernetes_service(self) -> tuple[str, int] | None:
        try:
            svc = await self.client.get(Service, "kubernetes", namespace="default")
        except ApiError as e:
            if _not_found(e):
                return None
            raise ApiUnavailable(str(e)) from e
        except httpx2.HTTPError as e:
            raise ApiUnavailable(str(e)) from e
        spec = svc.spec
        if spec is None or not spec.clusterIP:
            return None
        ports = spec.ports or []
        port = next((p.port for p in ports if p.name == "https"), ports[0].port if ports else 443)
        return spec.clusterIP, port

    async def patch_pod_status(self, namespace: str, name: str, status: JsonDict) -> bool:
        try:
            await self.client.patch(
                PodStatus, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
            )
        except ApiError as e:
            if _not_found(e):
                return False
            raise ApiUnavailable(str(e)) from e
        except httpx2.HTTPError as e:
            raise ApiUnavailable(str(e)) from e
        return True

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        try:
            resp = await self.raw.request(
                "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", json=body
            )
        except httpx2.HTTPError as e:
            raise ApiUnavailable(str(e)) from e
        if resp.status_code in (404, 409):  # gone, or a new pod with that name
            return
        if resp.status_code >= 400:
            raise ApiUnavailable(f"delete pod {namespace}/{name}: {resp.status_code} {resp.text}")

    async def create_event(self, namespace: str, event: JsonDict) -> None:
        try:
            await self.client.create(cast(Event, Event.from_dict(event)))
        except (ApiError, httpx2.HTTPError) as e:
            log.debug("event not recorded: %s", e)

    async def get_pod(self, namespace: str, name: str) -> PodDict | None:
        try:
            pod = await self.client.get(Pod, name, namespace=namespace)
        except ApiError as e:
            if _not_found(e):
                return None
            raise ApiUnavailable(str(e)) from e
        return to_pod_dict(pod)

    async def list_pods(self, node_name: str) -> tuple[list[PodDict], str]:
        """Every pod bound to ``node_name`` and the list's resourceVersion."""
        it = self.client.list(Pod, namespace="*", fields={"spec.nodeName": node_name})
        pods = [to_pod_dict(p) async for p in it]
        try:
            rv = it.resourceVersion
        except Exception:
            rv = ""
        return pods, str(rv or "")

    async def watch_pods(
        self, node_name: str, resource_version: str
    ) -> AsyncIterator[tuple[str, PodDict]]:
        """Pod events from ``resource_version``; raises when the watch breaks (e.g. 410)."""
        async for kind, pod in self.client.watch(
            Pod,
            namespace="*",
            fields={"spec.nodeName": node_name},
            resource_version=resource_version or None,
        ):
            yield kind, to_pod_dict(pod)


def to_pod_dict(pod: Any) -> PodDict:
    return cast(PodDict, pod.to_dict())
