"""The transport header's framing, fed whole and byte by byte (``mesh.proxy.transport_header``)."""

from __future__ import annotations

import pytest

from mesh.proxy.transport_header import (
    MAGIC,
    MAX_TARGET,
    Header,
    HeaderReader,
    NeedMore,
    NotHeader,
    encode,
)

TARGET = "db.demo.svc.east.example:5432"


def _feed_bytewise(data: bytes) -> NeedMore | NotHeader | Header:
    reader = HeaderReader()
    outcome: NeedMore | NotHeader | Header = NeedMore()
    for i in range(len(data)):
        outcome = reader.feed(data[i : i + 1])
        if not isinstance(outcome, NeedMore):
            return outcome
    return outcome


@pytest.mark.parametrize("feed", ["whole", "bytewise"])
def test_a_header_gives_its_target_and_the_bytes_after_it(feed: str) -> None:
    data = encode(TARGET) + b"\x01payload"
    if feed == "whole":
        outcome = HeaderReader().feed(data)
        assert outcome == Header(TARGET, b"\x01payload")
    else:
        outcome = _feed_bytewise(data)
        assert outcome == Header(TARGET, b"")  # the payload comes in later reads


@pytest.mark.parametrize(
    "first",
    [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"PRI * HTTP/2.0", b"x"],
    ids=["http1", "tls", "h2", "other"],
)
def test_anything_else_is_not_a_header_and_is_handed_back_whole(first: bytes) -> None:
    assert HeaderReader().feed(first) == NotHeader(first)


def test_an_empty_stream_is_not_a_header() -> None:
    assert HeaderReader().feed(b"") == NotHeader(b"")


def test_a_partial_header_needs_more() -> None:
    reader = HeaderReader()
    assert reader.feed(MAGIC[:5]) == NeedMore()
    assert reader.feed(MAGIC[5:] + b"\x00") == NeedMore()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x00GET / HTTP/1.1\r\n\r\n", "not a transport header"),
        (MAGIC + b"\x00\x00", "0 bytes"),
        (MAGIC + (MAX_TARGET + 1).to_bytes(2, "big") + b"a" * (MAX_TARGET + 1), "bytes"),
        (MAGIC + b"\x00\x05a b:1", "printable ASCII"),
        (MAGIC + b"\x00\x05\xff\xfe:12", "printable ASCII"),
    ],
    ids=["nul-then-http", "empty-target", "too-long", "space", "not-ascii"],
)
def test_malformed_headers_are_errors(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        HeaderReader().feed(data)


@pytest.mark.parametrize("cut", [1, len(MAGIC), len(MAGIC) + 2, len(MAGIC) + 5])
def test_a_stream_that_ends_inside_a_header_is_an_error(cut: int) -> None:
    reader = HeaderReader()
    assert reader.feed(encode(TARGET)[:cut]) == NeedMore()
    with pytest.raises(ValueError, match="ended inside"):
        reader.feed(b"")


@pytest.mark.parametrize("bad", ["", "a" * (MAX_TARGET + 1), "host name:80", "hôte:80"])
def test_encode_refuses_what_the_reader_would_refuse(bad: str) -> None:
    with pytest.raises(ValueError, match=r"bytes|ASCII|ascii"):
        encode(bad)
