"""Protocol detection: TLS ClientHello (SNI, ALPN), HTTP/1 request lines, everything else."""

from __future__ import annotations

import pytest

from mesh.proxy.detect import (
    MAX_HTTP_LINE,
    Detector,
    Http1,
    Http2,
    NeedMore,
    Opaque,
    Tls,
    detect,
    parse_client_hello,
)
from tests.proxy.proxy_support import client_hello

IDENTITY = "web.demo.serviceaccount.identity.linkerd.cluster.local"


def test_client_hello_gives_sni_and_alpn() -> None:
    hello = client_hello(IDENTITY, ["transport.l5d.io/v1", "http/1.1"])
    assert parse_client_hello(hello) == Tls(IDENTITY, ("transport.l5d.io/v1", "http/1.1"))


def test_client_hello_without_sni() -> None:
    assert parse_client_hello(client_hello(None)) == Tls(None, ())


@pytest.mark.parametrize("cut", [1, 5, 6, 40, -1])
def test_partial_client_hello_needs_more(cut: int) -> None:
    hello = client_hello(IDENTITY)
    assert parse_client_hello(hello[:cut]) is None
    assert detect(hello[:cut]) is None


def test_client_hello_split_across_records() -> None:
    hello = client_hello(IDENTITY, ["h2"])
    body = hello[5:]
    half = len(body) // 2
    records = b"".join(
        b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
        for chunk in (body[:half], body[half:])
    )
    assert parse_client_hello(records) == Tls(IDENTITY, ("h2",))
    assert parse_client_hello(records[:-1]) is None


def test_not_a_client_hello() -> None:
    with pytest.raises(ValueError, match="not a TLS ClientHello"):
        parse_client_hello(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00")  # a ServerHello
    assert isinstance(detect(b"\x16\x09\x01\x00\x05abcde"), Opaque)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Http1("GET", "/", "1.1")),
        (b"POST /a?b=c HTTP/1.0\r\n", Http1("POST", "/a?b=c", "1.0")),
        (b"GET http://web:8080/x HTTP/1.1\n", Http1("GET", "http://web:8080/x", "1.1")),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Http2()),
    ],
)
def test_http(data: bytes, expected: Http1 | Http2) -> None:
    assert detect(data) == expected


@pytest.mark.parametrize(
    "data", [b"G", b"GET", b"GET /index", b"GET / HTTP/1.1", b"PRI * HTTP/2.0\r\n"]
)
def test_incomplete_http_needs_more(data: bytes) -> None:
    assert detect(data) is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01binary",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"GET / SPDY/3\r\n",
        b"GET  / HTTP/1.1\r\n",
        b"GET / HTTP/3.0\r\n",
        b"hello world\n",
        b"{json}",
    ],
)
def test_other_bytes_are_opaque(data: bytes) -> None:
    assert isinstance(detect(data), Opaque)


def test_overlong_request_line_is_opaque() -> None:
    assert isinstance(detect(b"GET /" + b"a" * MAX_HTTP_LINE), Opaque)


def test_detector_accumulates_and_keeps_bytes() -> None:
    detector = Detector(now=100.0, timeout=10.0)
    assert detector.feed(b"GET /pa", now=100.1) == NeedMore(110.0)
    assert detector.feed(b"th HTTP/1.1\r\n", now=100.2) == Http1("GET", "/path", "1.1")
    assert detector.buffered == b"GET /path HTTP/1.1\r\n"
    assert detector.feed(b"more", now=100.3) == Http1("GET", "/path", "1.1")


def test_detector_deadline_makes_silent_clients_opaque() -> None:
    detector = Detector(now=0.0, timeout=10.0)
    assert detector.expire(now=9.9) == NeedMore(10.0)
    assert detector.expire(now=10.0) == Opaque("detection timed out")


def test_detector_late_bytes_after_deadline() -> None:
    detector = Detector(now=0.0, timeout=1.0)
    assert detector.feed(b"GE", now=0.5) == NeedMore(1.0)
    assert isinstance(detector.feed(b"T", now=2.0), Opaque)


def test_detector_end_of_stream() -> None:
    detector = Detector(now=0.0)
    detector.feed(b"GET /", now=0.0)
    assert detector.feed(b"", now=0.1) == Opaque("end of stream")


def test_detector_tls_in_pieces() -> None:
    hello = client_hello(IDENTITY)
    detector = Detector(now=0.0)
    for i in range(0, len(hello) - 1, 100):
        assert isinstance(detector.feed(hello[i : min(i + 100, len(hello) - 1)], now=0.0), NeedMore)
    assert detector.feed(hello[-1:], now=0.0) == Tls(IDENTITY, ())
    assert detector.buffered == hello
