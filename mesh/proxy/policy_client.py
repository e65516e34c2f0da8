"""Inbound policy from the policy service: one ``WatchPort`` stream per port.

``PolicyClient`` is the proxy's ``PolicySource``. It watches the application's
declared ports from the start, and any other port from the first connection to
it (at most ``MAX_WATCHED_PORTS``). Until a port's first answer — and whenever
there is no policy service — the port gets the pod's default policy from the
environment (``LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`` over the cluster
networks; opaque for ports with protocol detection disabled). A stream that
fails is reopened with back-off and the port keeps its last known policy, so a
control-plane outage never loosens (or tightens) what was in force.

``server_from`` maps the ``isthmus.policy.v1.Server`` message, sans I/O. An
authorization that cannot be understood (a bad CIDR, no authentication) is
dropped, so it admits nobody (fail closed). The message's ``probe_paths`` (the
pod's kubelet HTTP probes on the port) become the server's, which the proxy
admits for anyone on GET.
"""

from __future__ import annotations

import asyncio
import logging
import random

from grpc import aio

from mesh.proto import inbound_pb2 as pb
from mesh.proto import inbound_pb2_grpc as pb_grpc
from mesh.proxy.backoff import Backoff, BackoffSettings
from mesh.proxy.envconfig import InboundSettings, PolicySettings
from mesh.proxy.policy import (
    ALL_NETWORKS,
    POLICY_GROUP,
    Authentication,
    Authorization,
    DefaultPolicy,
    MeshTls,
    Network,
    ProxyProtocol,
    Server,
    Unauthenticated,
    default_server,
)

__all__ = [
    "MAX_WATCHED_PORTS",
    "PolicyClient",
    "authorization_from",
    "default_policy_server",
    "server_from",
]

log = logging.getLogger(__name__)

MAX_WATCHED_PORTS = 256
"""Ports watched at once; connections to further ports get the default policy."""

_PROTOCOLS = {
    None: ProxyProtocol.DETECT,
    "detect": ProxyProtocol.DETECT,
    "http1": ProxyProtocol.HTTP1,
    "opaque": ProxyProtocol.OPAQUE,
}
_AUTHZ_KINDS_IN_GROUP = ("authorizationpolicy", "serverauthorization")


def default_policy_server(
    policy: str, *, cluster_networks: tuple[Network, ...], opaque: bool = False
) -> Server:
    """The server for a port covered only by the default ``policy`` (``audit`` admits all)."""
    protocol = ProxyProtocol.OPAQUE if opaque else ProxyProtocol.DETECT
    if policy == "audit":
        everyone = Authorization(name="audit", kind="default", group="", networks=ALL_NETWORKS)
        return Server(
            "audit", kind="default", group="", protocol=protocol, authorizations=(everyone,)
        )
    return default_server(
        DefaultPolicy(policy), cluster_networks=cluster_networks, protocol=protocol
    )


def _authentication(message: pb.Authn) -> Authentication | None:
    permit = message.WhichOneof("permit")
    if permit == "unauthenticated":
        return Unauthenticated()
    if permit == "tls_authenticated":
        tls = message.tls_authenticated
        suffixes = tuple("*" if not s.strip(".") else "*." + s.strip(".") for s in tls.suffixes)
        return MeshTls((*tls.identities, *suffixes))
    return None


def authorization_from(message: pb.Authz) -> Authorization:
    """One authorization; ``ValueError`` if it cannot be understood."""
    meta = dict(message.labels)
    name = meta.get("name") or "unnamed"
    authentication = _authentication(message.authentication)
    if authentication is None:
        raise ValueError(f"authorization {name!r} has no authentication")
    try:
        networks = tuple(Network.parse(n.net, getattr(n, "except")) for n in message.networks)
    except ValueError as e:
        raise ValueError(f"authorization {name!r}: {e}") from None
    kind = meta.get("kind") or "authorizationpolicy"
    group = meta.get("group", POLICY_GROUP if kind in _AUTHZ_KINDS_IN_GROUP else "")
    return Authorization(
        name=name, kind=kind, group=group, authentication=authentication, networks=networks
    )


def server_from(message: pb.Server) -> Server:
    """The proxy's server for one ``Server`` message (bad authorizations dropped)."""
    meta = dict(message.labels)
    kind = meta.get("kind") or "server"
    authorizations: list[Authorization] = []
    for authz in message.authorizations:
        try:
            authorizations.append(authorization_from(authz))
        except ValueError as e:
            log.warning("ignoring an inbound authorization: %s", e)
    return Server(
        name=meta.get("name") or "unnamed",
        kind=kind,
        group=meta.get("group", POLICY_GROUP if kind == "server" else ""),
        protocol=_PROTOCOLS.get(message.protocol.WhichOneof("kind"), ProxyProtocol.DETECT),
        authorizations=tuple(authorizations),
        probe_paths=tuple(dict.fromkeys(p for p in message.probe_paths if p)),
    )


class PolicyClient:
    """The inbound ``PolicySource`` fed by ``WatchPort`` streams (see the module docstring)."""

    def __init__(
        self,
        inbound: InboundSettings,
        settings: PolicySettings | None,
        channel: aio.Channel | None,
        *,
        backoff: BackoffSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.inbound = inbound
        self.settings = settings
        self._stub = (
            pb_grpc.InboundServerPoliciesStub(channel)
            if channel is not None and settings is not None
            else None
        )
        self._backoff = backoff or BackoffSettings()
        self._rng = rng or random.Random()
        networks = inbound.cluster_networks
        self._default = default_policy_server(inbound.default_policy, cluster_networks=networks)
        self._opaque_default = default_policy_server(
            inbound.default_policy, cluster_networks=networks, opaque=True
        )
        self._servers: dict[int, Server] = {}
        self._watches: dict[int, asyncio.Task[None]] = {}
        self.answers = 0
        """Policy messages received (all ports)."""

    def default(self, port: int) -> Server:
        """The default policy's server for ``port``."""
        return self._opaque_default if port in self.inbound.opaque_ports else self._default

    def server(self, port: int) -> Server:
        """The server for ``port``: its watched policy, else the default (starting a watch)."""
        server = self._servers.get(port)
        if server is not None:
            return server
        self._watch(port)
        return self.default(port)

    def known(self, port: int) -> bool:
        """Whether the policy service has answered for ``port``."""
        return port in self._servers

    def start(self) -> None:
        """Watch the declared ports (call in the event loop)."""
        for port in self.inbound.ports:
            self._watch(port)

    def rebind(self, channel: aio.Channel) -> None:
        """Open watches from now on over ``channel`` (a new client certificate); open ones stay."""
        if self.settings is not None:
            self._stub = pb_grpc.InboundServerPoliciesStub(channel)

    def _watch(self, port: int) -> None:
        if self._stub is None or self.settings is None or port in self._watches:
            return
        if len(self._watches) >= MAX_WATCHED_PORTS:
            return
        request = pb.Workload(workload=self.settings.workload, port=port)
        task = asyncio.get_running_loop().create_task(self._follow(request), name=f"policy {port}")
        self._watches[port] = task

    async def _follow(self, request: pb.Workload) -> None:
        port = request.port
        backoff = Backoff(self._backoff, self._rng)
        while True:
            stub = self._stub
            assert stub is not None  # _watch starts no watch without one
            call = stub.WatchPort(request)
            try:
                async for message in call:
                    backoff.reset()
                    self._servers[port] = server_from(message)
                    self.answers += 1
                reason = "the stream ended"
            except aio.AioRpcError as e:
                reason = f"{e.code().name}: {e.details()}"
            finally:
                call.cancel()
            level = logging.INFO if backoff.failures == 0 else logging.DEBUG
            using = "the last policy" if port in self._servers else "the default policy"
            log.log(level, "inbound policy of port %d: %s; using %s", port, reason, using)
            await asyncio.sleep(backoff.next())

    async def close(self) -> None:
        """Stop every watch."""
        tasks = list(self._watches.values())
        self._watches.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
