"""Scenario tests of the HTTP/1.1 forwarding core: a client, the session, an app, all h11.

Every byte the session emits is fed to the peer it is meant for, in order, so a
test reads as a conversation: what the client sends, what the session decides,
what the app sees, what the client gets back.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest

from mesh.proxy.http1 import (
    MAX_HEAD_SIZE,
    CloseDownstream,
    Command,
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
    UpstreamConnection,
    strip_hop_by_hop,
)
from mesh.proxy.telemetry import Direction

VERIFIED = "web.demo.serviceaccount.identity.linkerd.cluster.local"


class Playbook:
    """Runs a session between an h11 client and h11 apps, recording what happened."""

    def __init__(self, direction: Direction = Direction.INBOUND, client_id: str | None = None):
        self.session = Http1Session(direction, client_id)
        self.client = h11.Connection(h11.CLIENT)
        self.apps: dict[int, h11.Connection] = {}
        self.commands: list[Command] = []
        self.routed: list[RequestHead] = []
        self.released: list[tuple[UpstreamConnection, bool]] = []
        self.downstream_closed = False

    def upstream(self, host: str = "10.42.0.9:8080") -> UpstreamConnection:
        up = UpstreamConnection(host)
        self.apps[id(up)] = h11.Connection(h11.SERVER)
        return up

    def app(self, up: UpstreamConnection) -> h11.Connection:
        return self.apps[id(up)]

    def run(self, commands: list[Command]) -> list[Command]:
        self.commands += commands
        for command in commands:
            match command:
                case SendDownstream(data):
                    self.client.receive_data(data)
                case SendUpstream(up, data):
                    self.app(up).receive_data(data)
                case RouteRequest(head):
                    self.routed.append(head)
                case ReleaseUpstream(up, reusable):
                    self.released.append((up, reusable))
                case CloseDownstream():
                    self.downstream_closed = True
                    self.client.receive_data(b"")
        return commands

    def client_sends(self, *events: Any) -> list[Command]:
        data = b"".join(self.client.send(e) or b"" for e in events)
        return self.run(self.session.receive_downstream(data))

    def client_sends_bytes(self, data: bytes) -> list[Command]:
        return self.run(self.session.receive_downstream(data))

    def forward(self, up: UpstreamConnection, authority: str | None = None) -> list[Command]:
        return self.run(self.session.forward(up, authority=authority))

    def respond(self, response: LocalResponse) -> list[Command]:
        return self.run(self.session.respond(response))

    def app_sends(self, up: UpstreamConnection, *events: Any) -> list[Command]:
        data = b"".join(self.app(up).send(e) or b"" for e in events)
        return self.run(self.session.receive_upstream(data))

    def app_closes(self, up: UpstreamConnection) -> list[Command]:
        return self.run(self.session.receive_upstream(b""))

    @staticmethod
    def events(conn: h11.Connection) -> list[Any]:
        found = []
        while True:
            event = conn.next_event()
            if event in (h11.NEED_DATA, h11.PAUSED):
                return found
            found.append(event)
            if isinstance(event, h11.ConnectionClosed):
                return found

    def client_gets(self) -> list[Any]:
        return self.events(self.client)

    def app_gets(self, up: UpstreamConnection) -> list[Any]:
        return self.events(self.app(up))


def get(target: str = "/", *headers: tuple[str, str], host: str = "bb:8080") -> h11.Request:
    return h11.Request(method="GET", target=target, headers=[("host", host), *headers])


def ok(body: bytes = b"hi", *headers: tuple[str, str]) -> list[Any]:
    return [
        h11.Response(status_code=200, headers=[("content-length", str(len(body))), *headers]),
        h11.Data(body),
        h11.EndOfMessage(),
    ]


def header(event: Any, name: bytes) -> list[bytes]:
    return [v for n, v in event.headers if n == name]


def body(events: list[Any]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, h11.Data))


def test_inbound_request_reaches_the_app_with_the_verified_client_id() -> None:
    book = Playbook(Direction.INBOUND, client_id=VERIFIED)
    cmds = book.client_sends(
        get("/", ("l5d-client-id", "spoofed"), ("x-app", "1")), h11.EndOfMessage()
    )
    assert [type(c) for c in cmds] == [RouteRequest]
    assert book.routed[0].path == "/"
    assert book.routed[0].authority == "bb:8080"
    assert book.session.phase is Phase.ROUTING
    up = book.upstream()
    book.forward(up)
    request, end = book.app_gets(up)
    assert header(request, b"l5d-client-id") == [VERIFIED.encode()]
    assert header(request, b"x-app") == [b"1"]
    assert isinstance(end, h11.EndOfMessage)
    cmds = book.app_sends(up, *ok(b"hello"))
    assert [c for c in cmds if not isinstance(c, SendDownstream)] == [
        ResponseStarted(200, local=False),
        ResponseFinished(200, 5),
        ReleaseUpstream(up, reusable=True),
    ]
    response, data, _ = book.client_gets()
    assert response.status_code == 200
    assert data.data == b"hello"
    assert book.session.phase is Phase.IDLE


def test_inbound_without_identity_strips_a_client_supplied_id() -> None:
    book = Playbook(Direction.INBOUND, client_id=None)
    book.client_sends(get("/", ("l5d-client-id", "spoofed")), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    request, _ = book.app_gets(up)
    assert header(request, b"l5d-client-id") == []


def test_hop_by_hop_headers_are_stripped_both_ways() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(
        get(
            "/",
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("x-end", "2"),
        ),
        h11.EndOfMessage(),
    )
    up = book.upstream()
    book.forward(up)
    request, _ = book.app_gets(up)
    names = [n for n, _ in request.headers]
    assert names == [b"host", b"x-end"]
    book.app_sends(up, *ok(b"x", ("keep-alive", "timeout=9"), ("x-resp", "3")))
    response = book.client_gets()[0]
    assert header(response, b"keep-alive") == []
    assert header(response, b"x-resp") == [b"3"]


def test_strip_keeps_framing_headers_even_if_listed() -> None:
    headers = [(b"connection", b"content-length, foo"), (b"content-length", b"3"), (b"foo", b"x")]
    assert strip_hop_by_hop(headers) == [(b"content-length", b"3")]


def test_keep_alive_reuses_both_connections() -> None:
    book = Playbook(Direction.OUTBOUND)
    up = book.upstream()
    for n in range(3):
        book.client_sends(get(f"/{n}"), h11.EndOfMessage())
        book.forward(up)
        assert book.app_gets(up)[0].target == f"/{n}".encode()
        book.app_sends(up, *ok(str(n).encode()))
        assert body(book.client_gets()) == str(n).encode()
        book.client.start_next_cycle()
        book.app(up).start_next_cycle()
    assert book.released == [(up, True)] * 3
    assert up.reusable


def test_pipelined_requests_are_routed_one_at_a_time() -> None:
    book = Playbook(Direction.OUTBOUND)
    raw = b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n"
    cmds = book.client_sends_bytes(raw)
    assert [c.head.path for c in cmds if isinstance(c, RouteRequest)] == ["/a"]
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    cmds = book.app_sends(up, *ok(b"a"))
    assert [c.head.path for c in cmds if isinstance(c, RouteRequest)] == ["/b"]


def test_request_body_streams_and_an_early_response_is_relayed() -> None:
    book = Playbook(Direction.OUTBOUND)
    post = h11.Request(
        method="POST", target="/upload", headers=[("host", "x"), ("transfer-encoding", "chunked")]
    )
    book.client_sends(post, h11.Data(b"part1"))
    up = book.upstream()
    book.forward(up)
    assert body(book.app_gets(up)) == b"part1"
    assert not book.session.request_complete
    book.app_sends(up, *ok(b"early"))
    assert body(book.client_gets()) == b"early"
    assert book.released == []  # the request is not over yet
    book.client_sends(h11.Data(b"part2"), h11.EndOfMessage())
    assert body(book.app_gets(up)) == b"part2"
    assert book.released == [(up, True)]


def test_chunked_response_with_trailers() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get("/", ("te", "trailers")), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    book.app_sends(
        up,
        h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")]),
        h11.Data(b"ab"),
        h11.Data(b"cd"),
        h11.EndOfMessage(headers=[("grpc-status", "0")]),
    )
    events = book.client_gets()
    assert body(events) == b"abcd"
    assert header(events[-1], b"grpc-status") == [b"0"]
    assert ResponseFinished(200, 4) in book.commands


def test_denied_request_gets_403_and_the_connection_stays_usable() -> None:
    book = Playbook(Direction.INBOUND)
    post = h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "4")])
    book.client_sends(post)
    cmds = book.respond(LocalResponse.forbidden())
    assert ResponseStarted(403, local=True) in cmds
    response, _ = book.client_gets()
    assert response.status_code == 403
    assert header(response, b"l5d-proxy-error") == [b"unauthorized request on route"]
    assert book.session.phase is Phase.LOCAL  # draining the unread body
    book.client_sends(h11.Data(b"body"), h11.EndOfMessage())
    assert book.session.phase is Phase.IDLE
    book.client.start_next_cycle()
    book.client_sends(get("/next"), h11.EndOfMessage())
    assert book.routed[-1].path == "/next"


def test_upstream_closing_before_the_response_gives_502() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get(), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    cmds = book.app_closes(up)
    assert cmds[0] == ReleaseUpstream(up, reusable=False)
    response, _ = book.client_gets()
    assert response.status_code == 502
    assert header(response, b"l5d-proxy-error") == [b"connection closed before the response"]
    assert not book.downstream_closed


def test_upstream_failure_reported_by_the_driver() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get(), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    book.run(book.session.upstream_failed(LocalResponse.gateway_timeout("response timed out")))
    response, _ = book.client_gets()
    assert (response.status_code, header(response, b"l5d-proxy-error")) == (
        504,
        [b"response timed out"],
    )
    assert book.released == [(up, False)]


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (LocalResponse.unavailable("service has no endpoints"), 503),
        (LocalResponse.bad_gateway("x"), 502),
    ],
)
def test_local_error_responses(response: LocalResponse, status: int) -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get(), h11.EndOfMessage())
    book.respond(response)
    got = book.client_gets()[0]
    assert got.status_code == status
    assert header(got, b"l5d-proxy-error") == [(response.error or "").encode()]


def test_upstream_cut_mid_body_closes_the_client() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get(), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    head = h11.Response(status_code=200, headers=[("content-length", "10")])
    book.app_sends(up, head, h11.Data(b"12345"))
    cmds = book.app_closes(up)
    assert ReleaseUpstream(up, reusable=False) in cmds
    finished = [c for c in cmds if isinstance(c, ResponseFinished)]
    assert finished
    assert finished[0].status == 200
    assert finished[0].error
    assert book.downstream_closed


def test_client_vanishing_mid_request_releases_the_upstream() -> None:
    book = Playbook(Direction.OUTBOUND)
    post = h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "10")])
    book.client_sends(post, h11.Data(b"123"))
    up = book.upstream()
    book.forward(up)
    cmds = book.client_sends_bytes(b"")
    assert ReleaseUpstream(up, reusable=False) in cmds
    assert isinstance(cmds[-1], CloseDownstream)


def test_garbage_gets_400_and_close() -> None:
    book = Playbook(Direction.INBOUND)
    cmds = book.client_sends_bytes(b"GET / HTTP/1.1\r\nbad header line\r\n\r\n")
    assert isinstance(cmds[-1], CloseDownstream)
    assert book.client_gets()[0].status_code == 400


def test_client_connection_close_ends_downstream_but_keeps_upstream() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get("/", ("connection", "close")), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    cmds = book.app_sends(up, *ok())
    assert ReleaseUpstream(up, reusable=True) in cmds
    assert isinstance(cmds[-1], CloseDownstream)


def test_upstream_connection_close_is_not_reused() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get(), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    book.app_sends(up, *ok(b"x", ("connection", "close")))
    assert book.released == [(up, False)]
    assert header(book.client_gets()[0], b"connection") == []
    assert not book.downstream_closed


def test_http10_request_gets_a_host_and_authority_override_replaces_it() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends_bytes(b"GET /old HTTP/1.0\r\n\r\n")
    up = book.upstream("10.42.0.9:8080")
    book.forward(up)
    assert header(book.app_gets(up)[0], b"host") == [b"10.42.0.9:8080"]
    book.app_sends(up, *ok())
    assert book.downstream_closed  # HTTP/1.0 without keep-alive

    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get("/", host="bb-west:8080"), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up, authority="bb.demo.svc.west.local:8080")
    assert header(book.app_gets(up)[0], b"host") == [b"bb.demo.svc.west.local:8080"]


def test_expect_100_continue_is_relayed() -> None:
    book = Playbook(Direction.OUTBOUND)
    post = h11.Request(
        method="POST",
        target="/",
        headers=[("host", "x"), ("content-length", "2"), ("expect", "100-continue")],
    )
    book.client_sends(post)
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    book.app_sends(up, h11.InformationalResponse(status_code=100, headers=[]))
    assert book.client_gets()[0].status_code == 100
    book.client_sends(h11.Data(b"ok"), h11.EndOfMessage())
    assert body(book.app_gets(up)) == b"ok"


def test_head_response_has_no_body() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(
        h11.Request(method="HEAD", target="/", headers=[("host", "x")]), h11.EndOfMessage()
    )
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    book.app_sends(
        up, h11.Response(status_code=200, headers=[("content-length", "42")]), h11.EndOfMessage()
    )
    response, end = book.client_gets()
    assert header(response, b"content-length") == [b"42"]
    assert isinstance(end, h11.EndOfMessage)
    assert book.released == [(up, True)]


def test_routing_twice_is_an_error() -> None:
    book = Playbook(Direction.OUTBOUND)
    with pytest.raises(RuntimeError, match="no request"):
        book.session.respond(LocalResponse.forbidden())


@pytest.mark.parametrize("pieces", [1, 7])
def test_a_request_head_over_the_limit_gets_431_however_it_arrives(pieces: int) -> None:
    """SEC-1: a head larger than MAX_HEAD_SIZE is refused whole or in pieces, never routed."""
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * MAX_HEAD_SIZE + b"\r\n\r\n"
    session = Http1Session(Direction.INBOUND)
    size = -(-len(data) // pieces)
    commands: list[Command] = []
    for start in range(0, len(data), size):
        commands += session.receive_downstream(data[start : start + size])
        if session.phase is Phase.CLOSED:
            break
    assert not any(isinstance(c, RouteRequest) for c in commands), "an oversized head was routed"
    sent = b"".join(c.data for c in commands if isinstance(c, SendDownstream))
    assert sent.startswith(b"HTTP/1.1 431 "), f"expected a 431, the client got {sent[:80]!r}"
    assert isinstance(commands[-1], CloseDownstream)


def test_a_chunked_response_to_an_http10_client_is_sent_until_close() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends_bytes(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n")
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    cmds = book.app_sends(
        up,
        h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")]),
        h11.Data(b"ab"),
        h11.EndOfMessage(),
    )
    sent = b"".join(c.data for c in cmds if isinstance(c, SendDownstream))
    head, _, rest = sent.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head
    assert rest == b"ab"
    assert isinstance(cmds[-1], CloseDownstream)
    assert book.released == [(up, True)]


def test_a_response_delimited_by_close_ends_both_connections() -> None:
    book = Playbook(Direction.OUTBOUND)
    book.client_sends(get(), h11.EndOfMessage())
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    book.run(book.session.receive_upstream(b"HTTP/1.1 200 OK\r\n\r\nstream"))
    cmds = book.app_closes(up)
    assert ResponseFinished(200, 6) in cmds
    assert ReleaseUpstream(up, reusable=False) in cmds
    assert isinstance(cmds[-1], CloseDownstream)
    response, data, end = book.client_gets()[:3]
    assert header(response, b"connection") == [b"close"]
    assert data.data == b"stream"
    assert isinstance(end, h11.EndOfMessage)


def test_garbage_pipelined_after_a_request_waits_for_its_response() -> None:
    book = Playbook(Direction.OUTBOUND)
    cmds = book.client_sends_bytes(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGARBAGE\r\n\r\n")
    assert [type(c) for c in cmds] == [RouteRequest]
    up = book.upstream()
    book.forward(up)
    book.app_gets(up)
    cmds = book.app_sends(up, *ok(b"a"))
    assert ReleaseUpstream(up, reusable=True) in cmds
    assert isinstance(cmds[-1], CloseDownstream)
    sent = b"".join(c.data for c in cmds if isinstance(c, SendDownstream))
    assert b"HTTP/1.1 200 " in sent
    assert b"HTTP/1.1 400 " in sent
