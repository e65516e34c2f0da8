"""The proxy process's parts, wired together: settings in, a serving proxy out.

``ProxyRuntime`` builds, from an ``EnvConfig``, the TLS store (pending until
the first certificate), the destination and policy clients (or their
stand-ins when the environment names no service), the identity client and the
``Proxy``. ``start`` serves the admin port at once (``/live`` answers, ``/ready``
says 503), then binds the inbound and outbound listeners once the first
certificate is installed, which is when the proxy becomes ready. ``stop`` stops
accepting, gives open connections a grace period, and closes every stream,
channel and task. Construct it inside the running event loop (gRPC channels
belong to one).

Control-plane channels (SEC-3): with identity, each is TLS whose server must
chain to the trust anchors and name the ``…_SVC_NAME`` identity. The identity
channel authenticates only the server (the proxy has no certificate yet);
destination and policy are called with mutual TLS, the proxy presenting its
current certificate: each new certificate gets new channels (gRPC channel
credentials are fixed), which streams started from then on use, while open
streams keep theirs (closing their channel would cut them). A channel is closed
once ``KEPT_CHANNEL_GENERATIONS`` newer certificates have come (about five days
at the default renewal), so a stream older than that restarts once.
Without identity (``LINKERD2_PROXY_IDENTITY_DISABLED``) every channel is plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from grpc import aio

from mesh.identity.channels import control_channel
from mesh.proxy.backoff import BackoffSettings
from mesh.proxy.config import ProxyConfig
from mesh.proxy.discovery import Discovery
from mesh.proxy.discovery_client import DestinationClient, NoDiscovery
from mesh.proxy.envconfig import EnvConfig, ServiceAddr
from mesh.proxy.identity_client import IdentityClient, RenewalPolicy
from mesh.proxy.origdst import OriginalDestination, original_destination
from mesh.proxy.policy_client import PolicyClient
from mesh.proxy.server import Proxy
from mesh.proxy.tls import TlsCredentials, TlsStore

__all__ = ["CHANNEL_OPTIONS", "KEPT_CHANNEL_GENERATIONS", "ProxyRuntime", "RuntimeOptions"]

KEPT_CHANNEL_GENERATIONS = 8
"""Destination/policy channel pairs kept open, the current one included (see above)."""

log = logging.getLogger(__name__)

CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.dns_min_time_between_resolutions_ms", 5000),
)
"""Control-plane channels reconnect within 5 s of a service's return (gRPC's default
grows to 120 s), and re-resolve a headless service's addresses at most every 5 s."""


def _read_token(path: Path) -> bytes:
    return path.read_bytes()


@dataclass(frozen=True)
class RuntimeOptions:
    """What a test (or a special deployment) may change about the runtime."""

    config: ProxyConfig | None = None
    """Listener and timeout settings; default: from the environment."""
    outbound_destination: OriginalDestination = original_destination
    inbound_destination: OriginalDestination = original_destination
    renewal: RenewalPolicy | None = None
    backoff: BackoffSettings | None = None
    """How control-plane streams are retried."""
    wall_clock: Callable[[], float] = time.time
    read_token: Callable[[Path], bytes] = _read_token
    rng: random.Random | None = None


class ProxyRuntime:
    """A proxy and its control-plane clients (see the module docstring)."""

    def __init__(self, env: EnvConfig, options: RuntimeOptions | None = None) -> None:
        options = options or RuntimeOptions()
        self.env = env
        rng = options.rng or random.Random()
        self._channels: list[aio.Channel] = []
        self._mtls: list[list[aio.Channel]] = []
        """Destination/policy channels per client certificate, oldest first."""
        tls = None
        if env.identity is not None:
            tls = TlsStore.pending(env.identity.local_name, env.identity.trust_anchors_pem)
        self._anchors = env.identity.trust_anchors_pem if env.identity is not None else None
        self.discovery: Discovery = NoDiscovery()
        self.destination: DestinationClient | None = None
        if env.destination is not None:
            self.destination = DestinationClient(
                env.destination,
                self._channel(env.destination.svc, env.destination.svc_name),
                backoff=options.backoff,
                rng=random.Random(rng.getrandbits(64)),
            )
            self.discovery = self.destination
        self.policy = PolicyClient(
            env.inbound,
            env.policy,
            self._channel(env.policy.svc, env.policy.svc_name) if env.policy is not None else None,
            backoff=options.backoff,
            rng=random.Random(rng.getrandbits(64)),
        )
        self.proxy = Proxy(
            options.config or env.proxy_config(),
            discovery=self.discovery,
            policy=self.policy,
            tls=tls,
            outbound_destination=options.outbound_destination,
            inbound_destination=options.inbound_destination,
            rng=random.Random(rng.getrandbits(64)),
        )
        self.identity: IdentityClient | None = None
        if env.identity is not None:
            self.identity = IdentityClient(
                env.identity,
                self._channel(env.identity.svc, env.identity.svc_name),
                on_certified=self._certified,
                policy=options.renewal,
                clock=options.wall_clock,
                rng=random.Random(rng.getrandbits(64)),
                read_token=options.read_token,
            )
        self._identity_task: asyncio.Task[None] | None = None

    def _channel(
        self, svc: ServiceAddr, svc_name: str, client: TlsCredentials | None = None
    ) -> aio.Channel:
        """A channel to ``svc``: TLS checking ``svc_name`` with identity, plaintext without."""
        if self._anchors is None:
            channel = aio.insecure_channel(svc.grpc_target, options=CHANNEL_OPTIONS)
        else:
            channel = control_channel(
                svc.grpc_target,
                svc_name,
                self._anchors,
                client_chain_pem=client.certificate_chain_pem if client else None,
                client_key_pem=client.key_pem if client else None,
                options=CHANNEL_OPTIONS,
            )
        self._channels.append(channel)
        return channel

    def _certified(self, credentials: TlsCredentials) -> None:
        """A new certificate: serve with it, and call destination and policy with it."""
        self.proxy.rotate(credentials)
        fresh: list[aio.Channel] = []
        if self.destination is not None and self.env.destination is not None:
            d = self.env.destination
            fresh.append(self._channel(d.svc, d.svc_name, credentials))
            self.destination.rebind(fresh[-1])
        if self.env.policy is not None:
            p = self.env.policy
            fresh.append(self._channel(p.svc, p.svc_name, credentials))
            self.policy.rebind(fresh[-1])
        self._mtls.append(fresh)
        while len(self._mtls) > KEPT_CHANNEL_GENERATIONS:
            for old in self._mtls.pop(0):
                self._channels.remove(old)
                asyncio.get_running_loop().create_task(old.close(None))

    async def start(self) -> None:
        """Serve admin now, and traffic once the first certificate is in (may wait long)."""
        await self.proxy.start(("admin",))
        if self.identity is not None:
            identity = self.identity
            self._identity_task = asyncio.get_running_loop().create_task(
                identity.run(), name="identity"
            )
            await identity.certified.wait()
        self.policy.start()
        await self.proxy.start()
        log.info(
            "proxy ready: inbound %s:%d, outbound %s:%d, admin %s:%d, identity %s, loop %s",
            self.proxy.config.inbound_host,
            self.proxy.inbound_port,
            self.proxy.config.outbound_host,
            self.proxy.outbound_port,
            self.proxy.config.admin_host,
            self.proxy.admin_port,
            self.identity.settings.local_name if self.identity else "disabled",
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting, let connections finish for ``grace`` seconds, then close everything."""
        if self._identity_task is not None:
            self._identity_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._identity_task
            self._identity_task = None
        await self.proxy.shutdown(grace)
        await self.policy.close()
        channels, self._channels = self._channels, []
        for channel in channels:
            await channel.close(None)

    async def __aenter__(self) -> ProxyRuntime:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
