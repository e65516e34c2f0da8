"""The mirror controller's Kubernetes edge: what it watches and how it writes, through lightkube.

Rules: the only module of the controller that builds lightkube objects or calls the
API. Reads become the core's snapshots (``Service``, ``EndpointSlice``, ``MirrorEndpoints``,
``Namespace``, the Link as a plain dict); writes are server-side applies under one field
manager (so fields the controller stops setting are removed) and deletes that treat
"already gone" as done. Each call raises ``httpx2.HTTPError`` (lightkube's ``ApiError``
included) on failure; the controller decides what to do with it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import httpx2
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1
from lightkube.types import PatchType

from mesh.k8s import convert
from mesh.k8s.events import WatchEvent
from mesh.k8s.objects import EndpointSlice, Service
from mesh.k8s.watching import WatchSettings, list_and_watch, merge
from mesh.multicluster import labels
from mesh.multicluster.kubeconfig import RemoteCluster
from mesh.multicluster.mirror import federated as fed
from mesh.multicluster.mirror.desired import EndpointsPort, MirrorEndpoints, MirrorService
from mesh.multicluster.mirror.messages import Namespace

__all__ = [
    "FIELD_MANAGER",
    "KubeLocal",
    "KubeRemote",
    "LinkResource",
    "endpoints",
    "remote_client",
    "remote_events",
]

FIELD_MANAGER = "linkerd-service-mirror"
LinkResource = create_namespaced_resource("multicluster.linkerd.io", "v1alpha3", "Link", "links")


def endpoints(obj: core_v1.Endpoints) -> MirrorEndpoints:
    """An Endpoints object as the core compares it: addresses flattened over its subsets."""
    meta = obj.metadata or ObjectMeta()
    ready: list[str] = []
    not_ready: list[str] = []
    ports: list[EndpointsPort] = []
    hostnames: dict[str, str] = {}
    for subset in obj.subsets or ():
        ready.extend(a.ip for a in subset.addresses or ())
        not_ready.extend(a.ip for a in subset.notReadyAddresses or ())
        for a in [*(subset.addresses or ()), *(subset.notReadyAddresses or ())]:
            if a.hostname:
                hostnames[a.ip] = a.hostname
        ports.extend(
            EndpointsPort(p.name or "", p.port, p.protocol or "TCP") for p in subset.ports or ()
        )
    return MirrorEndpoints(
        namespace=meta.namespace or "",
        name=meta.name or "",
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        ready=tuple(ready),
        not_ready=tuple(not_ready),
        ports=tuple(dict.fromkeys(ports)),
        hostnames=hostnames,
    )


def namespace(obj: core_v1.Namespace) -> Namespace:
    return Namespace((obj.metadata or ObjectMeta()).name or "")


def link_dict(obj: GenericNamespacedResource) -> dict[str, Any]:
    return cast(dict[str, Any], obj.to_dict())  # type: ignore[no-untyped-call]


def remote_client(cluster: RemoteCluster, timeout: float) -> AsyncClient:
    """A client for the target's API server; ``ValueError``/``OSError`` on an unusable CA."""
    config = KubeConfig.from_dict(cluster.kubeconfig())
    return AsyncClient(config=config, timeout=httpx2.Timeout(timeout), trust_env=False)


def remote_events(
    client: AsyncClient,
    settings: WatchSettings,
    on_error: Callable[[Exception], None],
) -> AsyncIterator[WatchEvent[Service] | WatchEvent[EndpointSlice]]:
    """The target's Services and EndpointSlices, every namespace."""
    services = list_and_watch(
        client, core_v1.Service, convert.service, Service, settings=settings, on_error=on_error
    )
    slices = list_and_watch(
        client,
        convert.RawEndpointSlice,
        convert.endpoint_slice_raw,
        EndpointSlice,
        settings=settings,
        on_error=on_error,
    )
    streams: list[AsyncIterator[WatchEvent[Service] | WatchEvent[EndpointSlice]]] = [
        services,
        slices,
    ]
    return merge(*streams)


def _gone(e: httpx2.HTTPError) -> bool:
    return isinstance(e, ApiError) and e.status.code == 404


def _conflict(e: httpx2.HTTPError) -> bool:
    return isinstance(e, ApiError) and e.status.code == 409


FEDERATED_ATTEMPTS = 8
"""Read-modify-write rounds of one federated merge before it is reported as failed."""


class FederatedStore(Protocol):
    """The reads and writes ``apply_claim`` needs; every write is conditional where it can be."""

    async def get(self, ns: str, name: str) -> core_v1.Service | None: ...
    async def create(self, obj: core_v1.Service) -> None: ...
    async def replace(self, obj: core_v1.Service) -> None: ...
    async def delete(self, ns: str, name: str) -> None: ...


async def apply_claim(store: FederatedStore, claim: fed.Op) -> str:
    """Apply ``claim`` (a merge or a prune) to ``<svc>-federated``; what was done
    (``unchanged`` included).

    Each round reads the object and writes the merge conditionally: creates fail with 409
    when another controller created it first, replaces carry the resourceVersion read and
    fail with 409 when another controller wrote since. Either way the round starts again.
    A delete happens only when the merge of a fresh read leaves no member; a controller
    that adds a member at that moment sees the deletion and creates the object again.
    """
    key = claim.key
    for _ in range(FEDERATED_ATTEMPTS):
        obj = await store.get(key.namespace, key.name)
        view = fed.view_of(convert.service(obj)) if obj is not None else None
        nxt = fed.apply(view, claim)
        if nxt is view:
            return "unchanged"
        try:
            if nxt is None:
                await store.delete(key.namespace, key.name)
                return "deleted"
            if obj is None:
                manifest = nxt.manifest(key.namespace, key.name)
                await store.create(cast(core_v1.Service, core_v1.Service.from_dict(manifest)))
                return "created"
            await store.replace(_rewritten(obj, nxt))
            return "updated"
        except ApiError as e:
            if not _conflict(e):
                raise
    raise httpx2.HTTPError(
        f"{key}: still conflicting after {FEDERATED_ATTEMPTS} read-modify-write rounds"
    )


def _rewritten(obj: core_v1.Service, nxt: fed.Federated) -> core_v1.Service:
    """``obj`` (as read, resourceVersion and clusterIP kept) with ``nxt``'s metadata and ports."""
    manifest = nxt.manifest("", "")
    meta = obj.metadata or ObjectMeta()
    meta.labels = dict(manifest["metadata"]["labels"])
    meta.annotations = dict(manifest["metadata"]["annotations"])
    obj.metadata = meta
    fresh = cast(core_v1.Service, core_v1.Service.from_dict(manifest))
    if obj.spec is not None and fresh.spec is not None:
        obj.spec.ports = fresh.spec.ports
    return obj


class _RemoteSession:
    def __init__(self, client: AsyncClient, settings: WatchSettings) -> None:
        self._client = client
        self._settings = settings

    def events(
        self, on_error: Callable[[Exception], None]
    ) -> AsyncIterator[WatchEvent[Service] | WatchEvent[EndpointSlice]]:
        return remote_events(self._client, self._settings, on_error)

    async def close(self) -> None:
        await self._client.close()


class KubeRemote:
    """Connects to the target with the credentials from the Link's Secret."""

    def __init__(self, settings: WatchSettings, timeout: float) -> None:
        self._settings = settings
        self._timeout = timeout

    def connect(self, cluster: RemoteCluster) -> _RemoteSession:
        return _RemoteSession(remote_client(cluster, self._timeout), self._settings)


class KubeLocal:
    """The source cluster as the controller uses it."""

    def __init__(self, client: AsyncClient, namespace: str, settings: WatchSettings) -> None:
        self.client = client
        self.namespace = namespace
        self.settings = settings

    # -- reads ------------------------------------------------------------------------------

    def services(self) -> AsyncIterator[WatchEvent[Service]]:
        return list_and_watch(
            self.client, core_v1.Service, convert.service, Service, settings=self.settings
        )

    def mirror_endpoints(self) -> AsyncIterator[WatchEvent[MirrorEndpoints]]:
        return list_and_watch(
            self.client,
            core_v1.Endpoints,
            endpoints,
            MirrorEndpoints,
            labels={labels.MIRRORED_SERVICE: "true"},
            settings=self.settings,
        )

    def namespaces(self) -> AsyncIterator[WatchEvent[Namespace]]:
        # Cluster-scoped: namespace "" leaves the namespace out of the request path.
        return list_and_watch(
            self.client,
            cast(Any, core_v1.Namespace),
            namespace,
            Namespace,
            namespace="",
            settings=self.settings,
        )

    def links(self) -> AsyncIterator[WatchEvent[dict[str, Any]]]:
        return list_and_watch(
            self.client,
            LinkResource,
            link_dict,
            dict,
            namespace=self.namespace,
            settings=self.settings,
        )

    async def credentials(self, secret: str) -> str:
        """The kubeconfig text in Secret ``secret``; ``KeyError``/``ValueError`` if malformed."""
        obj = await self.client.get(core_v1.Secret, secret, namespace=self.namespace)
        if obj.type != labels.CREDENTIALS_SECRET_TYPE:
            raise ValueError(
                f"Secret {secret} has type {obj.type!r}, not {labels.CREDENTIALS_SECRET_TYPE!r}"
            )
        data = obj.data or {}
        if labels.CREDENTIALS_KEY not in data:
            raise KeyError(f"Secret {secret} has no key {labels.CREDENTIALS_KEY!r}")
        return base64.b64decode(data[labels.CREDENTIALS_KEY]).decode("utf-8", errors="replace")

    # -- writes -----------------------------------------------------------------------------

    async def apply_service(self, svc: MirrorService) -> None:
        obj = cast(core_v1.Service, core_v1.Service.from_dict(svc.manifest()))
        await self.client.apply(obj, field_manager=FIELD_MANAGER, force=True)

    async def apply_endpoints(self, eps: MirrorEndpoints) -> None:
        obj = cast(core_v1.Endpoints, core_v1.Endpoints.from_dict(eps.manifest()))
        await self.client.apply(obj, field_manager=FIELD_MANAGER, force=True)

    async def apply_federated(self, claim: fed.Op) -> None:
        await apply_claim(_KubeFederated(self.client), claim)

    async def delete_service(self, ns: str, name: str) -> None:
        try:
            await self.client.delete(core_v1.Service, name, namespace=ns)
        except ApiError as e:
            if not _gone(e):
                raise

    async def delete_endpoints(self, ns: str, name: str) -> None:
        try:
            await self.client.delete(core_v1.Endpoints, name, namespace=ns)
        except ApiError as e:
            if not _gone(e):
                raise

    async def patch_link_status(self, link: str, status: dict[str, Any]) -> None:
        await self.client.patch(
            LinkResource.Status,
            link,
            {"status": status},
            namespace=self.namespace,
            patch_type=PatchType.MERGE,
        )

    async def record_event(self, link: str, type_: str, reason: str, message: str) -> None:
        now = datetime.now(UTC)
        event = core_v1.Event(
            metadata=ObjectMeta(name=f"{link}.{uuid.uuid4().hex[:12]}", namespace=self.namespace),
            involvedObject=ObjectReference(
                apiVersion="multicluster.linkerd.io/v1alpha3",
                kind="Link",
                name=link,
                namespace=self.namespace,
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            source=EventSource(component=labels.service_mirror_name(link)),
            reportingComponent=labels.service_mirror_name(link),
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        await self.client.create(event)


class _KubeFederated:
    """``FederatedStore`` on the local API server: replace is a PUT with the resourceVersion."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, ns: str, name: str) -> core_v1.Service | None:
        try:
            return await self._client.get(core_v1.Service, name, namespace=ns)
        except ApiError as e:
            if _gone(e):
                return None
            raise

    async def create(self, obj: core_v1.Service) -> None:
        await self._client.create(obj, field_manager=FIELD_MANAGER)

    async def replace(self, obj: core_v1.Service) -> None:
        await self._client.replace(obj, field_manager=FIELD_MANAGER)

    async def delete(self, ns: str, name: str) -> None:
        try:
            await self._client.delete(core_v1.Service, name, namespace=ns)
        except ApiError as e:
            if not _gone(e):
                raise
