"""Remote discovery's I/O: Links and their credentials in, remote clusters' objects out.

``RemoteSource.events()`` is a stream of ``RemoteEvent``s for the discovery hub. It
lists and watches the Links and the credentials Secrets (only those of the
``mirror.linkerd.io/remote-kubeconfig`` type, by field selector) in the multicluster
namespace, lets ``LinkCredentials`` decide which clusters to watch, and runs one
session per linked cluster: it reads the remote control plane's ``linkerd-config``
for the trust domain its proxies' identities use (falling back to the local one if
the remote does not let us read it), then lists and watches the remote Services,
EndpointSlices and Pods, every namespace, once for all lookups. A session whose API
server fails reports ``RemoteUnreachable`` and keeps retrying with back-off; its last
objects stay in use. Closing the stream stops every session and closes its client.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2
import yaml
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import GenericNamespacedResource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1

from mesh.destination.remote import (
    Connect,
    Credentials,
    Disconnect,
    LinkCredentials,
    LinkedCluster,
    RemoteEvent,
    RemoteObjects,
    RemoteTrustDomain,
    RemoteUnreachable,
)
from mesh.destination.snapshot import SnapshotEvent
from mesh.install.controlplane import CONFIG_MAP
from mesh.install.values import Values
from mesh.k8s import convert
from mesh.k8s.objects import EndpointSlice, Pod, Service
from mesh.k8s.watching import WatchSettings, list_and_watch, merge
from mesh.multicluster import labels as mc
from mesh.multicluster.mirror.kube import LinkResource, remote_client
from mesh.multicluster.mirror.link import parse_link

__all__ = ["RemoteSettings", "RemoteSource", "credentials", "credentials_refused", "linked_cluster"]

_log = logging.getLogger(__name__)

_REFUSED = frozenset({401, 403})
"""Answers of a remote API server that mean the credentials are unusable there."""


@dataclass(frozen=True)
class RemoteSettings:
    """Timing of remote discovery, in seconds."""

    request_timeout: float = 10.0
    """Each call to a remote API server (a watch is re-opened when it expires)."""
    watch: WatchSettings = field(default_factory=WatchSettings)
    """Back-off between failed lists and watches, local and remote."""


def linked_cluster(obj: GenericNamespacedResource) -> LinkedCluster:
    """A Link as discovery needs it; ``LinkError`` if its spec is unusable."""
    link = parse_link(cast(dict[str, Any], obj.to_dict()))  # type: ignore[no-untyped-call]
    return LinkedCluster(
        link=link.name,
        cluster=link.target_cluster_name,
        cluster_domain=link.target_cluster_domain,
        credentials_secret=link.credentials_secret,
        control_plane_ns=link.target_linkerd_namespace,
    )


def credentials(obj: core_v1.Secret) -> Credentials:
    """A credentials Secret's kubeconfig text, or what is wrong with it."""
    name = (obj.metadata or ObjectMeta()).name or ""
    data = obj.data or {}
    if mc.CREDENTIALS_KEY not in data:
        return Credentials(name, problem=f"it has no key {mc.CREDENTIALS_KEY!r}")
    try:
        text = base64.b64decode(data[mc.CREDENTIALS_KEY], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as e:
        return Credentials(name, problem=f"key {mc.CREDENTIALS_KEY!r} is not base64 UTF-8: {e}")
    return Credentials(name, kubeconfig=text)


def _trust_domain(config: core_v1.ConfigMap) -> str:
    tree = yaml.safe_load((config.data or {}).get("values", "")) or {}
    return Values.from_config(tree, strict=False).identity_trust_domain


def credentials_refused(e: BaseException) -> bool:
    """Whether a remote API server's answer says the credentials are unusable there."""
    return isinstance(e, ApiError) and e.status.code in _REFUSED


def _describe(e: BaseException) -> str:
    if isinstance(e, ApiError):
        return f"{e.status.code} {e.status.reason}: {e.status.message}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class RemoteSource:
    """Remote discovery's events: Links, credentials and every linked cluster's objects."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str = mc.NAMESPACE,
        settings: RemoteSettings | None = None,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._settings = settings or RemoteSettings()

    async def events(self) -> AsyncIterator[RemoteEvent]:
        queue: asyncio.Queue[RemoteEvent] = asyncio.Queue()
        sessions: dict[tuple[str, int], asyncio.Task[None]] = {}
        core = LinkCredentials()
        local = self._local_events()

        async def follow_local() -> None:
            async for event in local:
                for out in core.apply(event):
                    if isinstance(out, Connect):
                        key = (out.cluster, out.session)
                        sessions[key] = asyncio.create_task(
                            self._session(out, queue), name=f"remote-discovery-{out.cluster}"
                        )
                        _log.info("remote discovery: watching cluster %s", out.cluster)
                    elif isinstance(out, Disconnect):
                        task = sessions.pop((out.cluster, out.session), None)
                        if task is not None:
                            task.cancel()
                    else:
                        queue.put_nowait(out)

        feeder = asyncio.create_task(follow_local(), name="remote-discovery-links")
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, feeder}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                feeder.result()  # re-raises what ended the Link watch
                return
        finally:
            feeder.cancel()
            for task in sessions.values():
                task.cancel()
            await asyncio.gather(feeder, *sessions.values(), return_exceptions=True)

    def _local_events(
        self,
    ) -> AsyncIterator[Any]:
        settings = self._settings.watch
        links = list_and_watch(
            self._client,
            LinkResource,
            linked_cluster,
            LinkedCluster,
            namespace=self._namespace,
            settings=settings,
        )
        secrets = list_and_watch(
            self._client,
            core_v1.Secret,
            credentials,
            Credentials,
            namespace=self._namespace,
            settings=settings,
            fields={"type": mc.CREDENTIALS_SECRET_TYPE},
        )
        streams: list[AsyncIterator[Any]] = [links, secrets]
        return merge(*streams)

    async def _session(self, connect: Connect, queue: asyncio.Queue[RemoteEvent]) -> None:
        cluster, session = connect.cluster, connect.session

        def unreachable(e: Exception) -> None:
            _log.warning("remote discovery: cluster %s: %s", cluster, _describe(e))
            refused = credentials_refused(e)
            queue.put_nowait(RemoteUnreachable(cluster, session, _describe(e), refused))

        try:
            client = remote_client(connect.remote, self._settings.request_timeout)
        except (ValueError, OSError) as e:
            unreachable(e)
            return
        try:
            trust_domain = await self._remote_trust_domain(client, connect, unreachable)
            if trust_domain is not None:
                queue.put_nowait(RemoteTrustDomain(cluster, session, trust_domain))
            settings = self._settings.watch
            streams: list[AsyncIterator[SnapshotEvent]] = [
                list_and_watch(
                    client,
                    core_v1.Service,
                    convert.service,
                    Service,
                    settings=settings,
                    on_error=unreachable,
                ),
                list_and_watch(
                    client,
                    convert.RawEndpointSlice,
                    convert.endpoint_slice_raw,
                    EndpointSlice,
                    settings=settings,
                    on_error=unreachable,
                ),
                list_and_watch(
                    client, core_v1.Pod, convert.pod, Pod, settings=settings, on_error=unreachable
                ),
            ]
            async for event in merge(*streams):
                queue.put_nowait(RemoteObjects(cluster, session, event))
        finally:
            await client.close()

    async def _remote_trust_domain(
        self, client: AsyncClient, connect: Connect, unreachable: Any
    ) -> str | None:
        """The remote's trust domain; ``None`` if its config cannot be read (not allowed,
        absent or malformed): then the local trust domain is assumed."""
        delay = self._settings.watch.retry_initial
        while True:
            try:
                config = await client.get(
                    core_v1.ConfigMap, CONFIG_MAP, namespace=connect.control_plane_ns
                )
                return _trust_domain(config)
            except ApiError as e:
                if e.status.code in (401,) or (e.status.code or 0) >= 500:
                    unreachable(e)
                else:
                    _log.warning(
                        "remote discovery: cannot read %s/%s of cluster %s (%s); assuming "
                        "the local trust domain",
                        connect.control_plane_ns,
                        CONFIG_MAP,
                        connect.cluster,
                        _describe(e),
                    )
                    return None
            except httpx2.HTTPError as e:
                unreachable(e)
            except (yaml.YAMLError, ValueError, TypeError) as e:
                _log.warning(
                    "remote discovery: cluster %s's %s is unusable (%s); assuming the local "
                    "trust domain",
                    connect.cluster,
                    CONFIG_MAP,
                    _describe(e),
                )
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.watch.retry_max)
