"""The policy service over gRPC: the thin I/O layer around the inbound policy core.

``PolicyHub`` feeds watch events from an ``ObjectSource`` (the seam: lightkube
watches in production, a fake in tests) into the sans-IO ``PolicyWatcher`` and
hands each stream what the watcher says to send. ``InboundPolicyServicer``
answers ``WatchPort``: the port's ``Server`` now, then each time it changes.
Status codes: INVALID_ARGUMENT for a malformed workload or port, NOT_FOUND for a
pod the cluster does not have (or no longer has), UNAVAILABLE before the first
complete listing (after ``ServerSettings.sync_timeout``) and when the service
stops watching. ``PolicyServer`` wires both to a ``grpc.aio`` server, with
``/ready`` and ``/live`` on a plain-HTTP admin port.

``python -m mesh.policy.server --cluster-domain D --trust-domain T
--control-plane-ns linkerd --port 8090 --default-inbound-policy all-unauthenticated
--cluster-networks 10.0.0.0/8,... [--kubeconfig F] [--admin-port 9990]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Protocol, cast

import grpc
from aiohttp import web
from grpc import aio
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.resources import core_v1

from mesh.identity.bootstrap import add_identity_arguments, certify_from_identity, identity_settings
from mesh.k8s import convert as k8s_convert
from mesh.k8s.annotations import parse_ports
from mesh.k8s.objects import Pod
from mesh.k8s.watching import WatchSettings, event_reporter, list_and_watch, merge
from mesh.policy import convert
from mesh.policy.defaults import DefaultPolicy, PolicyConfig, parse_networks
from mesh.policy.finding_events import FindingReporter, finding_reporter
from mesh.policy.findings import FindingTracker
from mesh.policy.model import InboundServer, Network
from mesh.policy.resources import (
    AuthorizationPolicy,
    MeshTLSAuthentication,
    Namespace,
    NetworkAuthentication,
    Server,
    ServerAuthorization,
)
from mesh.policy.snapshot import PolicyEvent
from mesh.policy.translate import server_message
from mesh.policy.watcher import PodGone, PodNotFound, PolicyWatcher, PortTarget, TargetError
from mesh.proto import inbound_pb2 as pb
from mesh.proto import inbound_pb2_grpc as pb_grpc
from mesh.serving import ServerSettings, grpc_server, serve_until_stopped

__all__ = [
    "DEFAULT_ADMIN_PORT",
    "DEFAULT_PORT",
    "HubClosed",
    "InboundPolicyServicer",
    "KubeObjectSource",
    "ObjectSource",
    "PolicyHub",
    "PolicyServer",
    "ServerSettings",
    "main",
]

_log = logging.getLogger(__name__)

COMPONENT = "linkerd-policy"
"""Names this service in the Events it writes about objects it skips (SEC-4)."""

DEFAULT_PORT = 8090
DEFAULT_ADMIN_PORT = 9990
"""Linkerd's policy controller admin port (``/ready``, ``/live``)."""


class ObjectSource(Protocol):
    """Where pods, namespaces and policy resources come from, as watch events."""

    def events(self) -> AsyncIterator[PolicyEvent]:
        """Each kind's ``Listed`` first, then its changes; ends only on failure or cancel."""
        ...


class KubeObjectSource:
    """An ``ObjectSource`` watching every namespace through a lightkube client.

    The ``policy.linkerd.io`` CRDs must be installed: until each kind can be
    listed, the service is not synced and streams fail UNAVAILABLE.
    """

    def __init__(self, client: AsyncClient, settings: WatchSettings | None = None) -> None:
        self._client = client
        self._settings = settings or WatchSettings()

    def events(self) -> AsyncIterator[PolicyEvent]:
        client, settings = self._client, self._settings
        report = event_reporter(client, COMPONENT)
        # Namespaces are cluster-scoped: ``list_and_watch`` is typed for namespaced
        # kinds, but namespace "" leaves the namespace out of the request path.
        namespaces = list_and_watch(
            client,
            cast(Any, core_v1.Namespace),
            convert.namespace,
            Namespace,
            namespace="",
            settings=settings,
            report=report,
        )
        streams: list[AsyncIterator[PolicyEvent]] = [
            list_and_watch(
                client, core_v1.Pod, k8s_convert.pod, Pod, settings=settings, report=report
            ),
            namespaces,
            list_and_watch(
                client,
                convert.ServerResource,
                convert.server,
                Server,
                settings=settings,
                report=report,
            ),
            list_and_watch(
                client,
                convert.ServerAuthorizationResource,
                convert.server_authorization,
                ServerAuthorization,
                settings=settings,
                report=report,
            ),
            list_and_watch(
                client,
                convert.AuthorizationPolicyResource,
                convert.authorization_policy,
                AuthorizationPolicy,
                settings=settings,
                report=report,
            ),
            list_and_watch(
                client,
                convert.MeshTLSAuthenticationResource,
                convert.meshtls_authentication,
                MeshTLSAuthentication,
                settings=settings,
                report=report,
            ),
            list_and_watch(
                client,
                convert.NetworkAuthenticationResource,
                convert.network_authentication,
                NetworkAuthentication,
                settings=settings,
                report=report,
            ),
        ]
        return merge(*streams)


class HubClosed(Exception):
    """The hub stopped receiving events; its streams cannot be kept up to date."""


class PolicyHub:
    """Applies watch events to the watcher and routes what it says to open streams."""

    def __init__(
        self,
        watcher: PolicyWatcher,
        settings: ServerSettings | None = None,
        report: FindingReporter | None = None,
    ) -> None:
        self.watcher = watcher
        self._settings = settings or ServerSettings()
        self._synced = asyncio.Event()
        self._closed = False
        self._queues: dict[int, asyncio.Queue[InboundServer | PodGone | None]] = {}
        self.findings = FindingTracker(watcher.config)
        self._report = report
        self._reports: set[asyncio.Task[None]] = set()

    def _tell(self, event: PolicyEvent) -> None:
        """Report (without waiting) each new problem ``event`` brought to light."""
        if self._report is None:
            return
        for finding in self.findings.apply(event, self.watcher.snapshot):
            task = asyncio.create_task(self._report(finding), name="policy-finding")
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

    @property
    def synced(self) -> bool:
        """Whether the first complete listing has arrived."""
        return self._synced.is_set()

    async def run(self, source: ObjectSource) -> None:
        """Apply ``source``'s events until it ends; then close every open stream."""
        try:
            async for event in source.events():
                changes = self.watcher.apply(event)
                if self.watcher.synced:
                    self._synced.set()
                self._tell(event)
                for sub, change in changes.items():
                    self._queues[sub].put_nowait(change)
        finally:
            self._closed = True
            for queue in self._queues.values():
                queue.put_nowait(None)
            for task in list(self._reports):
                task.cancel()

    async def _wait_synced(self) -> None:
        if self._closed:
            raise HubClosed("the policy service is shutting down")
        try:
            await asyncio.wait_for(self._synced.wait(), self._settings.sync_timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no complete listing from the Kubernetes API within "
                f"{self._settings.sync_timeout:g}s"
            ) from None

    async def watch_port(self, target: PortTarget) -> AsyncGenerator[InboundServer]:
        """The policy of ``target`` now, then each time it changes.

        ``PodNotFound`` if the pod does not exist, or when it is deleted.
        """
        await self._wait_synced()
        sub, first = self.watcher.watch(target)
        queue: asyncio.Queue[InboundServer | PodGone | None] = asyncio.Queue()
        self._queues[sub] = queue
        try:
            yield first
            while True:
                item = await queue.get()
                if item is None:
                    raise HubClosed("the policy service stopped watching the cluster")
                if isinstance(item, PodGone):
                    raise PodNotFound(f"pod {target.namespace}/{target.pod} was deleted")
                yield item
        finally:
            self.watcher.unwatch(sub)
            del self._queues[sub]


Context = aio.ServicerContext[pb.Workload, pb.Server]


class InboundPolicyServicer(pb_grpc.InboundServerPoliciesServicer):
    """``isthmus.policy.v1.InboundServerPolicies`` answered from a ``PolicyHub``."""

    def __init__(self, hub: PolicyHub) -> None:
        self._hub = hub

    async def WatchPort(self, request: pb.Workload, context: Context) -> AsyncIterator[pb.Server]:
        try:
            target = PortTarget.parse(request.workload, request.port)
            async with contextlib.aclosing(self._hub.watch_port(target)) as stream:
                async for current in stream:
                    yield server_message(current)
        except TargetError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except PodNotFound as e:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except (TimeoutError, HubClosed) as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))


class PolicyServer:
    """A policy service: a gRPC server, its admin endpoints, and the task feeding its hub."""

    def __init__(
        self,
        config: PolicyConfig,
        source: ObjectSource,
        settings: ServerSettings | None = None,
        report: FindingReporter | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.hub = PolicyHub(PolicyWatcher(config), self.settings, report)
        self._source = source
        self._server: aio.Server | None = None
        self._admin: web.AppRunner | None = None
        self._feed: asyncio.Task[None] | None = None

    async def _ready(self, request: web.Request) -> web.Response:
        if self.hub.synced:
            return web.Response(text="ready\n")
        return web.Response(text="not synced with the Kubernetes API\n", status=503)

    async def _live(self, request: web.Request) -> web.Response:
        return web.Response(text="live\n")

    async def _start_admin(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/live", self._live)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.settings.admin_keepalive,
            lingering_time=self.settings.admin_keepalive,
        )
        await runner.setup()
        sock = socket.create_server((host, port), reuse_port=False)
        site = web.SockSite(runner, sock)
        await site.start()
        self._admin = runner
        return int(sock.getsockname()[1])

    async def start(
        self,
        address: str = f"0.0.0.0:{DEFAULT_PORT}",
        admin: tuple[str, int] | None = None,
        credentials: grpc.ServerCredentials | None = None,
    ) -> tuple[int, int | None]:
        """Feed the hub and serve on ``address`` (and ``admin``); return the bound ports.

        With ``credentials`` the gRPC port serves (m)TLS, else plaintext.
        """
        server = grpc_server()
        pb_grpc.add_InboundServerPoliciesServicer_to_server(InboundPolicyServicer(self.hub), server)
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        admin_port = await self._start_admin(*admin) if admin is not None else None
        self._feed = asyncio.create_task(self.hub.run(self._source), name="policy-feed")
        await server.start()
        self._server = server
        return port, admin_port

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
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None


def _default_policy(text: str) -> DefaultPolicy:
    policy = DefaultPolicy.parse(text)
    if policy is None:
        choices = ", ".join(p.value for p in DefaultPolicy)
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {choices}")
    return policy


def _networks(text: str) -> tuple[Network, ...]:
    try:
        return parse_networks(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"cluster networks {text!r}: {e}") from None


def _parser() -> argparse.ArgumentParser:
    defaults = PolicyConfig()
    parser = argparse.ArgumentParser(
        prog="python -m mesh.policy.server", description="The mesh's inbound policy service."
    )
    parser.add_argument("--cluster-domain", default=defaults.cluster_domain)
    parser.add_argument("--trust-domain", default=defaults.trust_domain)
    parser.add_argument("--control-plane-ns", default=defaults.control_plane_ns)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on")
    parser.add_argument(
        "--admin-port", type=int, default=DEFAULT_ADMIN_PORT, help="plain-HTTP /ready and /live"
    )
    parser.add_argument(
        "--default-inbound-policy",
        type=_default_policy,
        default=defaults.default_policy,
        help="policy of ports no Server selects, unless the pod or namespace is annotated",
    )
    parser.add_argument(
        "--cluster-networks",
        type=_networks,
        default=defaults.cluster_networks,
        help="comma-separated CIDRs of the cluster-* default policies",
    )
    parser.add_argument(
        "--default-opaque-ports",
        default=None,
        help="ports opaque unless annotated otherwise (default: Linkerd's list)",
    )
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    parser.add_argument("--log-level", default="INFO")
    add_identity_arguments(parser)
    return parser


def _config(args: argparse.Namespace) -> PolicyConfig:
    defaults = PolicyConfig()
    return PolicyConfig(
        cluster_domain=args.cluster_domain,
        trust_domain=args.trust_domain,
        control_plane_ns=args.control_plane_ns,
        default_policy=args.default_inbound_policy,
        cluster_networks=args.cluster_networks,
        default_opaque_ports=(
            parse_ports(args.default_opaque_ports)
            if args.default_opaque_ports is not None
            else defaults.default_opaque_ports
        ),
    )


async def _serve(args: argparse.Namespace) -> None:
    config = _config(args)
    kube_config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else None
    client = AsyncClient(config=kube_config)
    identity = await certify_from_identity(identity_settings(args))
    server = PolicyServer(
        config, KubeObjectSource(client), report=finding_reporter(client, COMPONENT)
    )
    port, admin = await server.start(
        f"{args.address}:{args.port}",
        (args.address, args.admin_port),
        identity.serving.credentials(),
    )
    _log.info(
        "policy serving on %s:%d, admin on %s (default policy %s, cluster networks %s)",
        args.address,
        port,
        admin,
        config.default_policy,
        ",".join(n.net for n in config.cluster_networks),
    )
    try:
        await serve_until_stopped("policy", server.wait(), server.stop)
    finally:
        await identity.close()
        await client.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the policy service until SIGTERM."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # One line per list and watch request is noise unless debugging.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
