"""The proxy's ``Discovery`` over the destination service's ``Get`` and ``GetProfile`` streams.

A target is what the outbound proxy resolves: an original destination
(``ip:port``) or a traffic-split backend (``<svc>.<ns>.svc.<domain>:port``).

- An IP outside the profile networks, or a name outside the profile suffixes,
  is not asked about: ``NotFound`` (forward to the original destination).
- An IP is looked up with ``GetProfile``. A profile naming a service starts a
  ``Get`` stream on ``<fqn>:<port>``; one carrying an endpoint (a pod IP, or an
  address nobody knows) resolves to that endpoint alone; one with neither is
  ``NotFound``. ``dst_overrides`` and ``http_routes`` become a ``Split`` (an
  empty one ends it; backends of weight 0 are left out).
  The destination service refusing the authority (INVALID_ARGUMENT) is
  ``NotFound``, as Linkerd forwards what discovery does not know.
- A name (a split backend) is resolved with ``Get`` alone: backends are not
  split again.
- Streams that fail or end are reopened with back-off; meanwhile the last
  endpoints stay in use. The first message of each (re)opened ``Get`` stream
  describes the whole set, so it is applied as a ``Replace``. If discovery
  fails before it has said anything, the target is ``NotFound`` until it answers
  (traffic is forwarded rather than failed, as Linkerd falls back).
- Messages map one-to-one: ``add`` (with ``tls_identity``, weights relative to
  10000, metric labels of the set and of each address, authority overrides),
  ``remove``, ``no_endpoints``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any

import grpc
from grpc import aio

from mesh.proto import destination_pb2 as pb
from mesh.proto import destination_pb2_grpc as pb_grpc
from mesh.proxy.backoff import Backoff, BackoffSettings
from mesh.proxy.discovery import (
    Add,
    Address,
    Backend,
    Endpoint,
    NoEndpoints,
    NotFound,
    Remove,
    Replace,
    Split,
    Update,
    labels,
)
from mesh.proxy.envconfig import DestinationSettings
from mesh.proxy.routes import HeaderMatch, PathKind, Route, RouteMatch

__all__ = [
    "DEFAULT_WEIGHT",
    "DestinationClient",
    "NoDiscovery",
    "endpoint_from",
    "routes_from",
    "split_from",
    "update_from",
]

log = logging.getLogger(__name__)

DEFAULT_WEIGHT = 10000
"""The weight of an ordinary endpoint in the destination API (weight 1.0 here)."""
SCHEME = "k8s"


def _address(message: pb.TcpAddress) -> Address:
    return Address(message.ip, message.port)


def endpoint_from(message: pb.WeightedAddr) -> Endpoint:
    """The proxy's endpoint for one ``WeightedAddr``."""
    identity = message.tls_identity.dns_name if message.HasField("tls_identity") else ""
    override = (
        message.authority_override.authority_override
        if message.HasField("authority_override")
        else ""
    )
    return Endpoint(
        _address(message.addr),
        identity=identity or None,
        labels=labels(dict(message.metric_labels)),
        weight=(message.weight or DEFAULT_WEIGHT) / DEFAULT_WEIGHT,
        authority_override=override or None,
    )


def update_from(message: pb.Update, *, first: bool) -> Update | None:
    """The proxy's update for one ``Update`` message; ``first`` of a stream replaces the set."""
    kind = message.WhichOneof("update")
    if kind == "add":
        endpoints = tuple(endpoint_from(a) for a in message.add.addrs)
        set_labels = labels(dict(message.add.metric_labels))
        return Replace(endpoints, set_labels) if first else Add(endpoints, set_labels)
    if kind == "remove":
        return Remove(tuple(_address(a) for a in message.remove.addrs))
    if kind == "no_endpoints":
        return NoEndpoints(exists=message.no_endpoints.exists)
    return None


def _backends(dsts: Iterable[pb.WeightedDst]) -> tuple[Backend, ...]:
    return tuple(Backend(d.authority or None, float(d.weight)) for d in dsts if d.weight > 0)


def split_from(profile: pb.DestinationProfile) -> tuple[Backend, ...]:
    """The weighted backends of a profile's ``dst_overrides`` (empty: not split)."""
    return _backends(profile.dst_overrides)


_PATH_KINDS = {
    pb.HttpRouteMatch.PATH_PREFIX: PathKind.PREFIX,
    pb.HttpRouteMatch.EXACT: PathKind.EXACT,
    pb.HttpRouteMatch.REGULAR_EXPRESSION: PathKind.REGEX,
}


def _match(message: pb.HttpRouteMatch) -> RouteMatch:
    return RouteMatch(
        _PATH_KINDS.get(message.path_kind, PathKind.PREFIX),
        message.path or "/",
        tuple(
            HeaderMatch(h.name.lower().encode("latin-1"), h.value, h.regex) for h in message.headers
        ),
        message.method.upper(),
    )


def routes_from(profile: pb.DestinationProfile) -> tuple[Route, ...]:
    """A profile's ``http_routes``, one route per match, in the order given."""
    return tuple(
        Route(match, _backends(rule.backends))
        for rule in profile.http_routes
        for match in (tuple(_match(m) for m in rule.matches) or (RouteMatch(),))
    )


async def _forever() -> None:
    await asyncio.Event().wait()


class NoDiscovery:
    """Discovery when there is no destination service: every target is forwarded as addressed."""

    async def resolve(self, target: str) -> AsyncIterator[Update]:
        yield NotFound()
        await _forever()


class DestinationClient:
    """``Discovery`` on a gRPC channel to the destination service (see the module docstring)."""

    def __init__(
        self,
        settings: DestinationSettings,
        channel: aio.Channel,
        *,
        backoff: BackoffSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.stub = pb_grpc.DestinationStub(channel)
        self.backoff = backoff or BackoffSettings()
        self.rng = rng or random.Random()

    def rebind(self, channel: aio.Channel) -> None:
        """Open streams from now on over ``channel`` (a new client certificate); open ones stay."""
        self.stub = pb_grpc.DestinationStub(channel)

    def discoverable(self, address: Address) -> bool:
        """Whether discovery is asked about ``address`` at all."""
        if not address.is_ip:
            return self.settings.discoverable_name(address.host)
        ip = ipaddress.ip_address(address.host)
        return any(n.contains(ip) for n in self.settings.profile_networks)

    def request(self, path: str) -> pb.GetDestination:
        return pb.GetDestination(scheme=SCHEME, path=path, context_token=self.settings.context)

    async def resolve(self, target: str) -> AsyncIterator[Update]:
        """Updates for ``target`` until closed; transport failures are retried inside."""
        try:
            address = Address.parse(target)
        except ValueError:
            address = None
        if address is None or not self.discoverable(address):
            yield NotFound()
            await _forever()
            return
        resolution = _Resolution(self, address)
        try:
            resolution.start()
            while True:
                yield await resolution.next()
        finally:
            await resolution.close()


class _Resolution:
    """The streams behind one target, feeding one queue of updates."""

    def __init__(self, client: DestinationClient, address: Address) -> None:
        self.client = client
        self.address = address
        self._queue: asyncio.Queue[Update | BaseException] = asyncio.Queue()
        self._answered = False
        self._fallen_back = False
        self._split = Split()
        self._profiles: asyncio.Task[None] | None = None
        self._endpoints: asyncio.Task[None] | None = None
        self._endpoints_authority: str | None = None

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as e:  # surfaced to the consumer, which restarts the watch
                self._queue.put_nowait(e)

        return asyncio.get_running_loop().create_task(guarded(), name=name)

    def start(self) -> None:
        target = str(self.address)
        if self.address.is_ip:
            self._profiles = self._spawn(self._follow_profiles(), f"profile {target}")
        else:
            self._watch_endpoints(target)

    async def next(self) -> Update:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        tasks = [t for t in (self._profiles, self._endpoints) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _put(self, update: Update) -> None:
        self._answered = True
        self._queue.put_nowait(update)

    def _fallback(self, reason: str) -> None:
        """Forward to the original destination while discovery has said nothing."""
        if self._answered or self._fallen_back:
            return
        self._fallen_back = True
        log.info("discovery of %s unavailable (%s): forwarding as addressed", self.address, reason)
        self._queue.put_nowait(NotFound())

    def _watch_endpoints(self, authority: str) -> None:
        if authority == self._endpoints_authority:
            return
        self._stop_endpoints()
        self._endpoints_authority = authority
        self._endpoints = self._spawn(self._follow_endpoints(authority), f"endpoints {authority}")

    def _stop_endpoints(self) -> None:
        if self._endpoints is not None:
            self._endpoints.cancel()
        self._endpoints = None
        self._endpoints_authority = None

    def _apply_profile(self, profile: pb.DestinationProfile) -> None:
        split = Split(split_from(profile), routes_from(profile))
        if split != self._split:
            self._split = split
            self._put(split)
        fqn = profile.fully_qualified_name.rstrip(".")
        if fqn:
            self._watch_endpoints(f"{fqn}:{self.address.port}")
        elif profile.HasField("endpoint"):
            self._stop_endpoints()
            self._put(Replace((endpoint_from(profile.endpoint),)))
        else:
            self._stop_endpoints()
            self._put(NotFound())

    async def _follow_profiles(self) -> None:
        client = self.client
        backoff = Backoff(client.backoff, client.rng)
        request = client.request(str(self.address))
        while True:
            call = client.stub.GetProfile(request)
            try:
                async for profile in call:
                    backoff.reset()
                    self._apply_profile(profile)
                reason = "the profile stream ended"
            except aio.AioRpcError as e:
                if e.code() is grpc.StatusCode.INVALID_ARGUMENT:
                    log.debug("%s is not known to discovery: %s", self.address, e.details())
                    self._stop_endpoints()
                    self._put(NotFound())
                    return
                reason = f"GetProfile: {e.code().name}: {e.details()}"
                log.info("discovery of %s: %s; retrying", self.address, reason)
            finally:
                call.cancel()
            self._fallback(reason)
            await asyncio.sleep(backoff.next())

    async def _follow_endpoints(self, authority: str) -> None:
        client = self.client
        backoff = Backoff(client.backoff, client.rng)
        request = client.request(authority)
        while True:
            call = client.stub.Get(request)
            first = True
            try:
                async for message in call:
                    backoff.reset()
                    update = update_from(message, first=first)
                    first = False
                    if update is not None:
                        self._put(update)
                reason = "the endpoints stream ended"
            except aio.AioRpcError as e:
                if e.code() is grpc.StatusCode.INVALID_ARGUMENT:
                    log.debug("%s is not known to discovery: %s", authority, e.details())
                    self._put(NotFound())
                    return
                reason = f"Get: {e.code().name}: {e.details()}"
                log.info("discovery of %s: %s; retrying", authority, reason)
            finally:
                call.cancel()
            self._fallback(reason)
            await asyncio.sleep(backoff.next())
