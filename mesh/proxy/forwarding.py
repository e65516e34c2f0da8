"""The asyncio driver of ``Http1Session``: one downstream connection, its requests routed.

The session decides; this module only moves bytes and awaits. For each
``RouteRequest`` it asks a ``Router`` (inbound: policy then the app; outbound:
discovery, balancer, pool) for a ``Forward`` to a pooled upstream connection or
a local ``Respond``. It reads the downstream connection only when the session
can use the bytes (waiting for a request, or streaming a request body) and the
upstream while an exchange is in flight, both at once only for streaming bodies.

Slow clients cost only their connection (SEC-1): a request head must arrive in
full within ``request_head`` seconds of its first bytes (the first request's
clock starts with the connection, whose request line detection already read),
and a client that sends nothing for ``idle`` seconds while the proxy waits for
its next request or for more of a request body is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mesh.proxy.connection import Conn
from mesh.proxy.exchange import Exchange
from mesh.proxy.http1 import (
    CloseDownstream,
    Command,
    Header,
    Http1Session,
    LocalResponse,
    Phase,
    ReleaseUpstream,
    RequestHead,
    ResponseFinished,
    ResponseStarted,
    RouteRequest,
    SendDownstream,
    SendUpstream,
)
from mesh.proxy.pool import ConnectionPool, PooledConnection

__all__ = ["Forward", "Respond", "Router", "serve_http"]


@dataclass(slots=True)
class Forward:
    """Send the request over ``upstream`` (``authority`` replacing its own; ``headers`` added)."""

    upstream: PooledConnection
    exchange: Exchange
    authority: str | None = None
    headers: tuple[Header, ...] = ()


@dataclass(slots=True)
class Respond:
    """Answer the request with ``response``."""

    response: LocalResponse
    exchange: Exchange


class Router(Protocol):
    """Decides where each request of a connection goes."""

    async def route(self, head: RequestHead) -> Forward | Respond:
        """Where ``head`` goes; never raises for expected failures (it answers 5xx)."""
        ...


class _Driver:
    def __init__(
        self,
        down: Conn,
        session: Http1Session,
        router: Router,
        pool: ConnectionPool,
        clock: Callable[[], float],
        response_timeout: float | None,
        request_head: float | None,
        idle: float | None,
    ) -> None:
        self.down = down
        self.session = session
        self.router = router
        self.pool = pool
        self.clock = clock
        self.response_timeout = response_timeout
        self.request_head = request_head
        self.idle = idle
        self.head_deadline: float | None = None if request_head is None else clock() + request_head
        """When the request head being received must be complete (``None``: none started)."""
        self.closed = False
        self.head: RequestHead | None = None
        self.exchange: Exchange | None = None
        self.upstream: PooledConnection | None = None
        self.down_read: asyncio.Task[bytes | None] | None = None
        self.up_read: asyncio.Task[bytes | BaseException] | None = None
        self.up_read_for: PooledConnection | None = None

    async def run(self) -> None:
        try:
            while not self.closed:
                if self.head is not None:
                    head, self.head = self.head, None
                    await self.execute(await self.route(head))
                    continue
                await self.step()
        finally:
            pending = [t for t in (self.down_read, self.up_read) if t is not None]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            if self.upstream is not None:
                self.pool.release(self.upstream, reusable=False)
            if self.exchange is not None:
                self.exchange.abandon("connection closed", now=self.clock())

    async def route(self, head: RequestHead) -> list[Command]:
        self.head_deadline = None
        decision = await self.router.route(head)
        self.exchange = decision.exchange
        if isinstance(decision, Respond):
            return self.session.respond(decision.response)
        self.upstream = decision.upstream
        return self.session.forward(
            decision.upstream.http, authority=decision.authority, extra_headers=decision.headers
        )

    def wants_downstream(self) -> bool:
        phase = self.session.phase
        if phase is Phase.FORWARDING:
            return not self.session.request_complete
        return phase in (Phase.IDLE, Phase.LOCAL)

    async def step(self) -> None:
        want_down = self.wants_downstream()
        upstream = self.upstream
        if not want_down and upstream is None:
            self.closed = True
            return
        if self.down_read is None and self.up_read is None:
            if upstream is None:
                await self.on_downstream(await self.read_downstream())
                return
            if not want_down:
                await self.on_upstream(upstream, await self.read_upstream(upstream))
                return
        if want_down and self.down_read is None:
            self.down_read = asyncio.ensure_future(self.read_downstream())
        if upstream is not None and self.up_read is None:
            self.up_read = asyncio.ensure_future(self.read_upstream(upstream))
            self.up_read_for = upstream
        waiting = [t for t in (self.down_read, self.up_read) if t is not None]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self.down_read is not None and self.down_read in done:
            down_task, self.down_read = self.down_read, None
            await self.on_downstream(down_task.result())
        up_task = self.up_read
        if up_task is not None and up_task in done and not self.closed:
            self.up_read = None
            if self.upstream is upstream and upstream is not None:
                await self.on_upstream(upstream, up_task.result())

    async def settle_upstream_read(self, pooled: PooledConnection) -> bool:
        """Stop a read in flight on ``pooled`` before it is released; False if it got bytes."""
        task = self.up_read
        if task is None or self.up_read_for is not pooled:
            return True
        self.up_read = None
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
            return True
        return False

    def downstream_timeout(self) -> float | None:
        """How long the next downstream read may wait (see the module docstring)."""
        if self.session.phase is Phase.IDLE and self.head_deadline is not None:
            return max(self.head_deadline - self.clock(), 0.0)
        return self.idle

    async def read_downstream(self) -> bytes | None:
        """The next bytes from the client; ``None`` if it was too slow."""
        try:
            async with asyncio.timeout(self.downstream_timeout()):
                return await self.down.read()
        except TimeoutError:
            return None
        except (ConnectionError, OSError):
            return b""

    async def read_upstream(self, upstream: PooledConnection) -> bytes | BaseException:
        timeout = self.response_timeout if self.session.request_complete else None
        try:
            async with asyncio.timeout(timeout):
                return await upstream.conn.read()
        except TimeoutError as e:
            return e
        except (ConnectionError, OSError) as e:
            return e

    async def on_downstream(self, data: bytes | None) -> None:
        if data is None:
            self.closed = True
            return
        if (
            data
            and self.session.phase is Phase.IDLE
            and self.head_deadline is None
            and self.request_head is not None
        ):
            self.head_deadline = self.clock() + self.request_head
        await self.execute(self.session.receive_downstream(data))

    async def on_upstream(self, upstream: PooledConnection, data: bytes | BaseException) -> None:
        if isinstance(data, TimeoutError):
            commands = self.session.upstream_failed(
                LocalResponse.gateway_timeout("response timed out")
            )
        elif isinstance(data, BaseException):
            commands = self.session.upstream_failed(LocalResponse.bad_gateway(_error(data)))
        else:
            commands = self.session.receive_upstream(data)
        await self.execute(commands)

    async def execute(self, commands: list[Command]) -> None:
        """Carry out ``commands`` in order; consecutive sends to one side go as one write."""
        queue = deque(commands)
        down: list[bytes] = []
        up: list[bytes] = []
        up_to: PooledConnection | None = None
        wrote_down = False
        wrote_up: PooledConnection | None = None

        def flush_down() -> None:
            nonlocal wrote_down
            if not down:
                return
            data = down[0] if len(down) == 1 else b"".join(down)
            down.clear()
            try:
                self.down.write(data)
                wrote_down = True
            except (ConnectionError, OSError):
                self.closed = True

        def flush_up() -> None:
            nonlocal wrote_up, up_to
            pooled, up_to = up_to, None
            if pooled is None or not up:
                up.clear()
                return
            data = up[0] if len(up) == 1 else b"".join(up)
            up.clear()
            try:
                pooled.conn.write(data)
                wrote_up = pooled
            except (ConnectionError, OSError) as e:
                queue.extend(self.session.upstream_failed(LocalResponse.bad_gateway(_error(e))))

        while True:
            while queue:
                command = queue.popleft()
                if isinstance(command, SendDownstream):
                    down.append(command.data)
                elif isinstance(command, SendUpstream):
                    pooled = command.upstream.key
                    assert isinstance(pooled, PooledConnection)
                    if up_to is not pooled:
                        flush_up()
                        up_to = pooled
                    up.append(command.data)
                elif isinstance(command, ReleaseUpstream):
                    pooled = command.upstream.key
                    assert isinstance(pooled, PooledConnection)
                    if up_to is pooled:
                        flush_up()
                    flush_down()
                    if self.upstream is pooled:
                        self.upstream = None
                    if wrote_up is pooled:
                        wrote_up = None
                    settled = await self.settle_upstream_read(pooled)
                    self.pool.release(pooled, command.reusable and settled)
                elif isinstance(command, RouteRequest):
                    self.head = command.head
                elif isinstance(command, ResponseStarted):
                    if self.exchange is not None:
                        self.exchange.response_started(
                            command.status, local=command.local, now=self.clock()
                        )
                elif isinstance(command, ResponseFinished):
                    if self.exchange is not None:
                        self.exchange.finished(
                            command.status, command.body_bytes, command.error, now=self.clock()
                        )
                        self.exchange = None
                elif isinstance(command, CloseDownstream):
                    self.closed = True
            flush_up()
            if not queue:
                break
        flush_down()
        if wrote_up is not None:
            try:
                await wrote_up.conn.drain()
            except (ConnectionError, OSError) as e:
                await self.execute(
                    self.session.upstream_failed(LocalResponse.bad_gateway(_error(e)))
                )
        if wrote_down and not self.closed:
            try:
                await self.down.drain()
            except (ConnectionError, OSError):
                self.closed = True


def _error(error: BaseException) -> str:
    text = str(error)
    return text if text else type(error).__name__


async def serve_http(
    down: Conn,
    session: Http1Session,
    router: Router,
    pool: ConnectionPool,
    *,
    clock: Callable[[], float],
    response_timeout: float | None = None,
    request_head: float | None = None,
    idle: float | None = None,
) -> None:
    """Proxy HTTP/1.1 on ``down`` until either side closes; ``down`` is left to the caller.

    ``request_head`` and ``idle`` bound slow clients (see the module docstring);
    ``None`` waits without limit.
    """
    driver = _Driver(down, session, router, pool, clock, response_timeout, request_head, idle)
    await driver.run()
