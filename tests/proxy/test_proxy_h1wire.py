"""Scenario tests of the HTTP/1 wire layer: bytes in, events out (llhttp via httptools)."""

from __future__ import annotations

import pytest

from mesh.proxy.h1wire import (
    Body,
    Closed,
    End,
    Head,
    MessageReader,
    WireError,
    chunk,
    head_bytes,
    last_chunk,
)


def requests() -> MessageReader:
    return MessageReader(response=False, max_head=1024)


def responses() -> MessageReader:
    return MessageReader(response=True, max_head=1024)


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_a_request_head_lower_cases_names_and_strips_values() -> None:
    events = requests().feed(b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-Pad:  v  \r\n\r\n")
    assert kinds(events) == ["Head", "End"]
    head = events[0]
    assert isinstance(head, Head)
    assert (head.method, head.target, head.version) == ("GET", b"/a?b", "1.1")
    assert head.headers == [(b"host", b"x"), (b"x-pad", b"v")]
    assert head.keep_alive


def test_pipelined_requests_all_come_out_in_order() -> None:
    events = requests().feed(
        b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    heads = [e.target for e in events if isinstance(e, Head)]
    assert heads == [b"/1", b"/2"]


def test_a_request_in_pieces_and_its_body() -> None:
    reader = requests()
    data = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
    events = [e for i in range(len(data)) for e in reader.feed(data[i : i + 1])]
    assert kinds(events)[0] == "Head"
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"hello"
    assert isinstance(events[-1], End)


def test_chunked_body_with_trailers() -> None:
    events = responses().feed(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nab\r\n2\r\ncd\r\n0\r\ngrpc-status: 0\r\n\r\n"
    )
    head, end = events[0], events[-1]
    assert isinstance(head, Head)
    assert head.chunked
    assert not head.has_length
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"abcd"
    assert isinstance(end, End)
    assert end.trailers == [(b"grpc-status", b"0")]


def test_a_response_to_head_has_no_body_whatever_its_length() -> None:
    reader = responses()
    reader.skip_body = True
    events = reader.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n")
    assert kinds(events) == ["Head", "End"]
    reader.skip_body = False
    events = reader.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    assert kinds(events) == ["Head", "Body", "End"]


def test_informational_and_no_content_responses_end_at_their_head() -> None:
    events = responses().feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n"
    )
    assert kinds(events) == ["Head", "End", "Head", "End", "Head", "End"]
    assert [e.status for e in events if isinstance(e, Head)] == [100, 204, 304]


def test_a_response_without_framing_ends_when_the_peer_closes() -> None:
    reader = responses()
    events = reader.feed(b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert kinds(events) == ["Head", "Body"]
    head = events[0]
    assert isinstance(head, Head)
    assert not head.keep_alive
    assert kinds(reader.feed(b"")) == ["End"]


def test_closing_mid_message_is_an_error_and_between_messages_is_not() -> None:
    reader = responses()
    reader.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345")
    with pytest.raises(WireError, match="closed mid-message"):
        reader.feed(b"")
    assert isinstance(requests().feed(b"")[0], Closed)


def test_a_101_response_is_marked_as_an_upgrade() -> None:
    events = responses().feed(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: ws\r\nconnection: upgrade\r\n\r\nxx"
    )
    head = events[0]
    assert isinstance(head, Head)
    assert head.upgrade


def test_a_request_asking_to_upgrade_is_followed_by_the_next_request() -> None:
    events = requests().feed(
        b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: ws\r\nconnection: upgrade\r\n\r\n"
        b"GET /next HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    assert [e.target for e in events if isinstance(e, Head)] == [b"/ws", b"/next"]


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
    ],
)
def test_malformed_requests_are_400(data: bytes) -> None:
    with pytest.raises(WireError) as raised:
        requests().feed(data)
    assert raised.value.status == 400


@pytest.mark.parametrize("piece", [16, 4096])
def test_a_head_over_the_limit_is_431_whole_or_in_pieces(piece: int) -> None:
    data = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 2048 + b"\r\n\r\n"
    reader = requests()

    def feed_all() -> None:
        for start in range(0, len(data), piece):
            reader.feed(data[start : start + piece])

    with pytest.raises(WireError) as raised:
        feed_all()
    assert raised.value.status == 431


def test_an_http10_request_without_keep_alive_ignores_what_follows() -> None:
    events = requests().feed(b"GET / HTTP/1.0\r\n\r\nGET /more HTTP/1.1\r\nhost: x\r\n\r\n")
    assert kinds(events) == ["Head", "End"]
    head = events[0]
    assert isinstance(head, Head)
    assert not head.keep_alive


def test_serialising() -> None:
    assert head_bytes(b"GET / HTTP/1.1", [(b"host", b"x")]) == b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert last_chunk() == b"0\r\n\r\n"
    assert last_chunk([(b"a", b"1")]) == b"0\r\na: 1\r\n\r\n"
