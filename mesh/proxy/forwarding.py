"""The asyncio driver of ``Http1Session``: one downstream connection, its requests routed.

The session decides; this module only moves bytes. It runs in the sockets'
receive callbacks (``Conn.set_sink``): no task per read, no timeout object per
read. For each ``RouteRequest`` it asks a ``Router`` (inbound: policy then the
app; outbound: discovery, balancer, pool) for a ``Forward`` to a pooled
upstream connection or a local ``Respond``: first ``route_now``, which answers
without waiting when it can (an idle pooled connection, endpoints known), and
only otherwise ``route`` in a task. Consecutive sends to one side go as one write.

Reading follows what the session can use: bytes that arrive while it cannot
(a pipelined request behind an exchange, a body while the request is routed)
are kept by the session and the downstream socket is paused until it can; a
full send buffer pauses the side that fills it until it drains.

Slow clients cost only their connection (SEC-1): a request head must arrive in
full within ``request_head`` seconds of its first bytes (the first request's
clock starts with the connection, whose request line detection already read),
and a client that sends nothing for ``idle`` seconds while the proxy waits for
its next request or for more of a request body is closed. With
``response_timeout``, an upstream silent that long after the whole request was
sent gives 504. One timer per connection checks these deadlines; it fires at
least once per shortest timeout, so a deadline is never missed or moved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

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

log = logging.getLogger(__name__)


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

    def route_now(self, head: RequestHead) -> Forward | Respond | None:
        """Where ``head`` goes if that is known without waiting; ``None`` otherwise.

        ``None`` must leave nothing behind (no lease, no metric): ``route`` follows."""
        ...

    async def route(self, head: RequestHead) -> Forward | Respond:
        """Where ``head`` goes; never raises for expected failures (it answers 5xx)."""
        ...


class _Driver:
    __slots__ = (
        "clock",
        "closed",
        "done",
        "down",
        "down_paused",
        "exchange",
        "finished",
        "head",
        "head_deadline",
        "idle",
        "last_down",
        "last_up",
        "loop",
        "period",
        "pool",
        "request_head",
        "response_timeout",
        "router",
        "routing",
        "session",
        "timer",
        "up_full",
        "up_sink",
        "upstream",
    )

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
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.down = down
        self.session = session
        self.router = router
        self.pool = pool
        self.clock = clock
        self.response_timeout = response_timeout
        self.request_head = request_head
        self.idle = idle
        timeouts = [t for t in (response_timeout, request_head, idle) if t is not None]
        self.period = min(timeouts) if timeouts else None
        """The timer fires at least this often (see the module docstring)."""
        now = clock()
        self.head_deadline: float | None = None if request_head is None else now + request_head
        """When the request head being received must be complete (``None``: none started)."""
        self.last_down = now
        self.last_up = now
        self.closed = False
        self.finished = False
        self.head: RequestHead | None = None
        self.exchange: Exchange | None = None
        self.upstream: PooledConnection | None = None
        self.routing: asyncio.Task[Forward | Respond] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.down_paused = False
        self.up_full = False
        """The upstream's send buffer is full: the downstream is paused until it drains."""
        self.up_sink = self.on_upstream

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.down.set_sink(self.on_downstream)
        if self.period is not None:
            self.timer = self.loop.call_later(self.period, self.on_timer)

    def finish(self) -> None:
        """End the connection's proxying (idempotent); the caller closes ``down``."""
        self.closed = True
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.routing is not None:
            self.routing.cancel()
            self.routing = None
        self.down.set_sink(None)
        self.down.on_drained = None
        if self.upstream is not None:
            self.release(self.upstream, reusable=False)
        if self.exchange is not None:
            self.exchange.abandon("connection closed", now=self.clock())
            self.exchange = None
        if not self.done.done():  # cancelled with the task awaiting it
            self.done.set_result(None)

    def release(self, pooled: PooledConnection, reusable: bool) -> None:
        if self.upstream is pooled:
            self.upstream = None
        conn = pooled.conn
        conn.set_sink(None)
        conn.on_drained = None
        conn.resume_reading()
        self.pool.release(pooled, reusable)
        if self.up_full:
            self.up_full = False
            self.sync_reading()

    # --- events ---------------------------------------------------------------------

    def on_downstream(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            now = self.last_down = self.clock()
            session = self.session
            if (
                data
                and self.head_deadline is None
                and self.request_head is not None
                and session.phase is Phase.IDLE
            ):
                self.head_deadline = now + self.request_head
            self.execute(session.receive_downstream(data))
            if not self.closed and not self.down_paused and not self.wants_downstream():
                self.down_paused = True
                self.down.pause_reading()
        except Exception:
            log.exception("proxying for %s failed", self.down.peer)
            self.finish()

    def on_upstream(self, data: bytes) -> None:
        if self.closed or self.upstream is None:
            return
        try:
            self.last_up = self.clock()
            error = None if data else self.upstream.conn.error
            if error is not None:
                commands = self.session.upstream_failed(LocalResponse.bad_gateway(_error(error)))
            else:
                commands = self.session.receive_upstream(data)
            self.execute(commands)
        except Exception:
            log.exception("proxying for %s failed", self.down.peer)
            self.finish()

    def on_timer(self) -> None:
        self.timer = None
        if self.closed or self.period is None:
            return
        now = self.clock()
        next_at = now + self.period
        if self.wants_downstream():
            if self.session.phase is Phase.IDLE and self.head_deadline is not None:
                deadline: float | None = self.head_deadline
            else:
                deadline = None if self.idle is None else self.last_down + self.idle
            if deadline is not None:
                if deadline <= now:
                    self.finish()  # too slow: SEC-1
                    return
                next_at = min(next_at, deadline)
        if (
            self.upstream is not None
            and self.response_timeout is not None
            and self.session.request_complete
        ):
            deadline = self.last_up + self.response_timeout
            if deadline <= now:
                response = LocalResponse.gateway_timeout("response timed out")
                self.execute(self.session.upstream_failed(response))
                if self.closed:
                    return
            else:
                next_at = min(next_at, deadline)
        self.timer = self.loop.call_later(max(next_at - now, 0.0), self.on_timer)

    def on_routed(self, task: asyncio.Task[Forward | Respond]) -> None:
        if self.routing is task:
            self.routing = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("routing a request from %s failed: %s", self.down.peer, error)
            self.finish()
            return
        decision = task.result()
        if self.closed:
            decision.exchange.abandon("connection closed", now=self.clock())
            if isinstance(decision, Forward):
                self.pool.release(decision.upstream, reusable=True)
            return
        try:
            self.run(self.decide(decision))
            self.proceed()
        except Exception:
            log.exception("proxying for %s failed", self.down.peer)
            self.finish()

    # --- deciding -------------------------------------------------------------------

    def wants_downstream(self) -> bool:
        phase = self.session.phase
        if phase is Phase.FORWARDING:
            return not self.session.request_complete
        return phase is Phase.IDLE or phase is Phase.LOCAL

    def execute(self, commands: list[Command]) -> None:
        self.run(commands)
        self.proceed()

    def proceed(self) -> None:
        """Route the requests the session has handed over, then settle reading."""
        while self.head is not None and not self.closed:
            head, self.head = self.head, None
            self.head_deadline = None
            decision = self.router.route_now(head)
            if decision is None:
                task = self.loop.create_task(self.router.route(head))
                self.routing = task
                task.add_done_callback(self.on_routed)
                return
            self.run(self.decide(decision))
        if self.closed:
            self.finish()
        else:
            self.sync_reading()

    def decide(self, decision: Forward | Respond) -> list[Command]:
        self.exchange = decision.exchange
        if isinstance(decision, Respond):
            return self.session.respond(decision.response)
        pooled = decision.upstream
        self.upstream = pooled
        self.last_up = self.clock()
        pooled.conn.set_sink(self.up_sink)
        return self.session.forward(
            pooled.http, authority=decision.authority, extra_headers=decision.headers
        )

    def sync_reading(self) -> None:
        if self.down_paused and not self.up_full and self.wants_downstream():
            self.down_paused = False
            self.down.resume_reading()

    # --- carrying out -----------------------------------------------------------------

    def run(self, commands: list[Command]) -> None:
        """Carry out ``commands`` in order; consecutive sends to one side go as one write.

        A failed upstream write appends the session's answer to ``commands``."""
        down: list[bytes] = []
        up: list[bytes] = []
        up_to: PooledConnection | None = None
        i = 0
        while True:
            while i < len(commands):
                command = commands[i]
                i += 1
                if type(command) is SendDownstream:
                    down.append(command.data)
                elif type(command) is SendUpstream:
                    pooled = cast(PooledConnection, command.upstream.key)
                    if up_to is not pooled:
                        if up_to is not None and up:
                            self.send_up(up_to, up, commands)
                        up_to = pooled
                    up.append(command.data)
                elif type(command) is ResponseStarted:
                    if self.exchange is not None:
                        self.exchange.response_started(
                            command.status, local=command.local, now=self.clock()
                        )
                elif type(command) is ResponseFinished:
                    if self.exchange is not None:
                        self.exchange.finished(
                            command.status, command.body_bytes, command.error, now=self.clock()
                        )
                        self.exchange = None
                elif type(command) is ReleaseUpstream:
                    pooled = cast(PooledConnection, command.upstream.key)
                    if up_to is pooled:
                        if up:
                            self.send_up(pooled, up, commands)
                        up_to = None
                    if down:
                        self.send_down(down)
                    self.release(pooled, command.reusable)
                elif type(command) is RouteRequest:
                    self.head = command.head
                elif type(command) is CloseDownstream:
                    self.closed = True
            if up_to is not None and up:
                self.send_up(up_to, up, commands)
            up_to = None
            if i >= len(commands):
                break
        if down:
            self.send_down(down)

    def send_down(self, parts: list[bytes]) -> None:
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        conn = self.down
        try:
            conn.write(data)
        except (ConnectionError, OSError):
            self.closed = True
            return
        upstream = self.upstream
        if conn.writing_paused and upstream is not None and conn.on_drained is None:
            upstream.conn.pause_reading()
            conn.on_drained = upstream.conn.resume_reading

    def send_up(self, pooled: PooledConnection, parts: list[bytes], then: list[Command]) -> None:
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        conn = pooled.conn
        try:
            conn.write(data)
        except (ConnectionError, OSError) as e:
            then += self.session.upstream_failed(LocalResponse.bad_gateway(_error(e)))
            return
        if conn.writing_paused and not self.up_full:
            self.up_full = True
            if not self.down_paused:
                self.down_paused = True
                self.down.pause_reading()
            conn.on_drained = self.upstream_drained

    def upstream_drained(self) -> None:
        if self.up_full:
            self.up_full = False
            self.sync_reading()


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
    driver.start()
    try:
        await driver.done
    finally:
        driver.finish()
