"""The destination service over gRPC: the thin I/O layer around the discovery core.

``DiscoveryHub`` feeds watch events from an ``ObjectSource`` (the seam: lightkube
watches in production, a fake in tests) into the sans-IO ``DestinationWatcher``
and hands each stream what the watcher says to send. ``DestinationServicer``
answers ``Get`` and ``GetProfile``; ``DestinationServer`` wires both to a
``grpc.aio`` server. Streams wait for the first complete listing before
answering, at most ``ServerSettings.sync_timeout``.

``python -m mesh.destination --cluster-domain D --trust-domain T
--control-plane-ns linkerd --port 8086``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Protocol, TypeVar, cast

import grpc
from grpc import aio
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.resources import core_v1

from mesh.destination import authority
from mesh.destination.config import DiscoveryConfig
from mesh.destination.endpoints import Update
from mesh.destination.profiles import Profile
from mesh.destination.remote import RemoteEvent
from mesh.destination.remote_source import RemoteSource
from mesh.destination.snapshot import SnapshotEvent
from mesh.destination.split_watch import ProblemReporter, split_streams
from mesh.destination.splits import Problem
from mesh.destination.translate import profile_message, update_message
from mesh.destination.watcher import DestinationWatcher, RemoteClusterNotFound, SubscriptionId
from mesh.identity.bootstrap import add_identity_arguments, certify_from_identity, identity_settings
from mesh.k8s import convert
from mesh.k8s.annotations import parse_ports
from mesh.k8s.objects import EndpointSlice, Pod, Service
from mesh.k8s.watching import WatchSettings, event_reporter, list_and_watch, merge
from mesh.proto import destination_pb2 as pb
from mesh.proto import destination_pb2_grpc as pb_grpc
from mesh.serving import ServerSettings, grpc_server, serve_until_stopped

__all__ = [
    "DEFAULT_PORT",
    "DestinationServer",
    "DestinationServicer",
    "DiscoveryHub",
    "HubClosed",
    "KubeObjectSource",
    "ObjectSource",
    "ServerSettings",
    "main",
]

_log = logging.getLogger(__name__)

COMPONENT = "linkerd-destination"
"""Names this service in the Events it writes about objects it skips (SEC-4)."""

DEFAULT_PORT = 8086
_SCHEMES = ("", "k8s")
_T = TypeVar("_T")


DiscoveryEvent = SnapshotEvent | RemoteEvent


class ObjectSource(Protocol):
    """Where the cluster's Services, EndpointSlices and Pods come from, as watch events."""

    def events(self) -> AsyncIterator[DiscoveryEvent]:
        """Each kind's ``Listed`` first, then its changes; ends only on failure or cancel."""
        ...


class KubeObjectSource:
    """An ``ObjectSource`` watching every namespace through a lightkube client."""

    def __init__(
        self,
        client: AsyncClient,
        settings: WatchSettings | None = None,
        *,
        remote_discovery: bool = False,
    ) -> None:
        self._client = client
        self._settings = settings or WatchSettings()
        self.remote_discovery = remote_discovery
        """Also watch linked clusters (``RemoteSource``) for remote-discovery lookups."""

    def events(self) -> AsyncIterator[DiscoveryEvent]:
        client, settings = self._client, self._settings
        report = event_reporter(client, COMPONENT)
        streams: list[AsyncIterator[DiscoveryEvent]] = [
            list_and_watch(
                client, core_v1.Service, convert.service, Service, settings=settings, report=report
            ),
            list_and_watch(
                client,
                convert.RawEndpointSlice,
                convert.endpoint_slice_raw,
                EndpointSlice,
                settings=settings,
                report=report,
            ),
            list_and_watch(client, core_v1.Pod, convert.pod, Pod, settings=settings, report=report),
        ]
        splits = split_streams(client, settings, report)
        split_events = cast(list[AsyncIterator[SnapshotEvent]], splits)
        if self.remote_discovery:
            streams.append(RemoteSource(client).events())
        return merge(*streams, *split_events)


_EndpointsItem = list[Update] | RemoteClusterNotFound


class HubClosed(Exception):
    """The hub stopped receiving events; its streams cannot be kept up to date."""


class DiscoveryHub:
    """Applies watch events to the watcher and routes what it says to open streams."""

    def __init__(
        self,
        watcher: DestinationWatcher,
        settings: ServerSettings | None = None,
        on_problems: Callable[[frozenset[Problem]], None] | None = None,
    ) -> None:
        self.watcher = watcher
        self._settings = settings or ServerSettings()
        self._on_problems = on_problems
        self._synced = asyncio.Event()
        self._closed = False
        self._endpoint_queues: dict[SubscriptionId, asyncio.Queue[_EndpointsItem | None]] = {}
        self._profile_queues: dict[SubscriptionId, asyncio.Queue[Profile | None]] = {}

    async def run(self, source: ObjectSource) -> None:
        """Apply ``source``'s events until it ends; then close every open stream."""
        try:
            async for event in source.events():
                changes = self.watcher.apply(event)
                if self.watcher.synced:
                    self._synced.set()
                # updates before the end of a stream: a stream told not found is emptied first
                for sub, updates in changes.endpoints.items():
                    self._endpoint_queues[sub].put_nowait(updates)
                for sub, message in changes.not_found.items():
                    self._endpoint_queues[sub].put_nowait(RemoteClusterNotFound(message))
                for sub, current in changes.profiles.items():
                    self._profile_queues[sub].put_nowait(current)
                if self._on_problems is not None and self.watcher.synced:
                    self._on_problems(self.watcher.problems())
        finally:
            self._closed = True
            for equeue in self._endpoint_queues.values():
                equeue.put_nowait(None)
            for pqueue in self._profile_queues.values():
                pqueue.put_nowait(None)

    async def _wait_synced(self) -> None:
        if self._closed:
            raise HubClosed("the destination service is shutting down")
        try:
            await asyncio.wait_for(self._synced.wait(), self._settings.sync_timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no complete listing from the Kubernetes API within "
                f"{self._settings.sync_timeout:g}s"
            ) from None

    @staticmethod
    async def _next(queue: asyncio.Queue[_T | None]) -> _T:
        item = await queue.get()
        if item is None:
            raise HubClosed("the destination service stopped watching the cluster")
        return item

    async def endpoints(self, target: authority.Target) -> AsyncGenerator[list[Update]]:
        """The updates for ``target``: the whole set first, then each change.

        Raises ``RemoteClusterNotFound`` when the target's remote cluster is (or stops
        being) found."""
        await self._wait_synced()
        sub, first = self.watcher.watch_endpoints(target)
        queue: asyncio.Queue[_EndpointsItem | None] = asyncio.Queue()
        self._endpoint_queues[sub] = queue
        try:
            yield first
            while True:
                item: _EndpointsItem = await self._next(queue)
                if isinstance(item, RemoteClusterNotFound):
                    raise item
                yield item
        finally:
            self.watcher.unwatch(sub)
            del self._endpoint_queues[sub]

    async def profiles(self, target: authority.Target) -> AsyncGenerator[Profile]:
        """The profile of ``target`` now, then each time it changes."""
        await self._wait_synced()
        sub, first = self.watcher.watch_profile(target)
        queue: asyncio.Queue[Profile | None] = asyncio.Queue()
        self._profile_queues[sub] = queue
        try:
            yield first
            while True:
                yield await self._next(queue)
        finally:
            self.watcher.unwatch(sub)
            del self._profile_queues[sub]


Context = aio.ServicerContext[pb.GetDestination, pb.Update]
ProfileContext = aio.ServicerContext[pb.GetDestination, pb.DestinationProfile]


class DestinationServicer(pb_grpc.DestinationServicer):
    """``isthmus.destination.v1.Destination`` answered from a ``DiscoveryHub``."""

    def __init__(self, hub: DiscoveryHub) -> None:
        self._hub = hub

    def _target(self, request: pb.GetDestination) -> authority.Target:
        if request.scheme not in _SCHEMES:
            raise authority.AuthorityError(f"unsupported scheme {request.scheme!r}; use 'k8s'")
        return authority.parse(request.path, self._hub.watcher.config.cluster_domain)

    async def Get(self, request: pb.GetDestination, context: Context) -> AsyncIterator[pb.Update]:
        try:
            target = self._target(request)
            async with contextlib.aclosing(self._hub.endpoints(target)) as stream:
                async for updates in stream:
                    for update in updates:
                        yield update_message(update)
        except authority.AuthorityError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except RemoteClusterNotFound as e:
            _log.info("Get %s: %s", request.path, e)
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except (TimeoutError, HubClosed) as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))

    async def GetProfile(
        self, request: pb.GetDestination, context: ProfileContext
    ) -> AsyncIterator[pb.DestinationProfile]:
        try:
            target = self._target(request)
            async with contextlib.aclosing(self._hub.profiles(target)) as stream:
                async for current in stream:
                    yield profile_message(current)
        except authority.AuthorityError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except (TimeoutError, HubClosed) as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))


class DestinationServer:
    """A destination service: a gRPC server and the task feeding its hub from ``source``."""

    def __init__(
        self,
        config: DiscoveryConfig,
        source: ObjectSource,
        settings: ServerSettings | None = None,
        on_problems: Callable[[frozenset[Problem]], None] | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.hub = DiscoveryHub(DestinationWatcher(config), self.settings, on_problems)
        self._source = source
        self._server: aio.Server | None = None
        self._feed: asyncio.Task[None] | None = None

    async def start(
        self,
        address: str = f"0.0.0.0:{DEFAULT_PORT}",
        credentials: grpc.ServerCredentials | None = None,
    ) -> int:
        """Feed the hub and serve on ``address`` ((m)TLS with ``credentials``); return the port."""
        server = grpc_server()
        pb_grpc.add_DestinationServicer_to_server(DestinationServicer(self.hub), server)
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        self._feed = asyncio.create_task(self.hub.run(self._source), name="destination-feed")
        await server.start()
        self._server = server
        return port

    async def wait(self) -> None:
        """Return when the feed ends (it should not: an error is re-raised here)."""
        if self._feed is not None:
            await self._feed

    async def stop(self) -> None:
        """Stop the feed, which ends open streams UNAVAILABLE (proxies reconnect), then serving."""
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed
            self._feed = None
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace)
            self._server = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mesh.destination", description="The mesh's destination (discovery) service."
    )
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--trust-domain", default="cluster.local")
    parser.add_argument("--control-plane-ns", default="linkerd")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on")
    parser.add_argument(
        "--default-opaque-ports",
        default=None,
        help="ports opaque unless annotated otherwise (default: Linkerd's list)",
    )
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    parser.add_argument(
        "--no-remote-discovery",
        action="store_true",
        help="do not watch linked clusters (remote-discovery mirrors then have no endpoints)",
    )
    parser.add_argument("--log-level", default="INFO")
    add_identity_arguments(parser)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    config = DiscoveryConfig(
        cluster_domain=args.cluster_domain,
        trust_domain=args.trust_domain,
        control_plane_ns=args.control_plane_ns,
    )
    if args.default_opaque_ports is not None:
        config = DiscoveryConfig(
            cluster_domain=config.cluster_domain,
            trust_domain=config.trust_domain,
            control_plane_ns=config.control_plane_ns,
            default_opaque_ports=parse_ports(args.default_opaque_ports),
        )
    kube_config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else None
    client = AsyncClient(config=kube_config)
    identity = await certify_from_identity(identity_settings(args))
    source = KubeObjectSource(client, remote_discovery=not args.no_remote_discovery)
    reporter = ProblemReporter(client, COMPONENT)
    server = DestinationServer(config, source, on_problems=reporter)
    port = await server.start(f"{args.address}:{args.port}", identity.serving.credentials())
    _log.info(
        "destination serving on %s:%d (cluster domain %s, trust domain %s)",
        args.address,
        port,
        config.cluster_domain,
        config.trust_domain,
    )
    try:
        await serve_until_stopped("destination", server.wait(), server.stop)
    finally:
        await reporter.close()
        await identity.close()
        await client.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the destination service until SIGTERM."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve(args))
