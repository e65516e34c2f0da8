"""Table tests of the streaming rules: request parsing, negotiation, status, resize, pairs."""

from __future__ import annotations

import json

import pytest

from harness.providers.netns.kubelet.streaming import (
    V1,
    V2,
    V4,
    BadRequest,
    PortForwardPairs,
    ResizeDecoder,
    StreamRequest,
    error_status,
    exit_status,
    expected_streams,
    negotiate,
    parse_request,
)


def test_exec_request_as_the_api_server_sends_it() -> None:
    req = parse_request(
        "/exec/ns1/web-0/app?command=sh&command=-c&command=echo+hi&input=1&output=1&error=1"
    )
    assert req == StreamRequest(
        "exec", "ns1", "web-0", "app", ("sh", "-c", "echo hi"), True, True, True, False
    )


def test_tty_drops_stderr_as_kubelet_does() -> None:
    req = parse_request("/exec/ns/p/c?command=tty&input=1&output=1&error=1&tty=1")
    assert (req.tty, req.stderr, req.stdout) == (True, False, True)


def test_port_forward_and_attach_requests() -> None:
    assert parse_request("/portForward/ns/p") == StreamRequest("portForward", "ns", "p")
    attach = parse_request("/attach/ns/p/c?output=1")
    assert (attach.kind, attach.container, attach.stdout, attach.command) == (
        "attach",
        "c",
        True,
        (),
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/exec/ns/p/c?output=1", "at least one command"),
        ("/exec/ns/p/c?command=ls", "at least one of stdin"),
        ("/exec/ns/p?command=ls&output=1", "expected /exec"),
        ("/portForward/ns", "expected /portForward"),
        ("/run/ns/p/c", "unknown streaming endpoint"),
    ],
)
def test_bad_requests(target: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(target)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"], V4),
        (["v5.channel.k8s.io, v4.channel.k8s.io"], V4),
        (["v2.channel.k8s.io", "v4.channel.k8s.io"], V2),
        ([], ""),
        (["v5.channel.k8s.io"], None),
    ],
)
def test_negotiation_takes_the_clients_first_supported(
    offered: list[str], chosen: str | None
) -> None:
    assert negotiate(offered, (V4, "v3.channel.k8s.io", V2, V1)) == chosen


@pytest.mark.parametrize(
    ("target", "protocol", "streams"),
    [
        ("/exec/n/p/c?command=x&output=1&error=1", V4, {"error", "stdout", "stderr"}),
        (
            "/exec/n/p/c?command=x&input=1&output=1&tty=1",
            V4,
            {"error", "stdin", "stdout", "resize"},
        ),
        ("/exec/n/p/c?command=x&input=1&output=1&tty=1", V2, {"error", "stdin", "stdout"}),
    ],
)
def test_expected_streams(target: str, protocol: str, streams: set[str]) -> None:
    assert expected_streams(parse_request(target), protocol) == streams


def test_exit_status_v4_carries_the_exit_code_cause() -> None:
    assert json.loads(exit_status(0, V4)) == {"metadata": {}, "status": "Success"}
    failed = json.loads(exit_status(3, V4))
    assert failed["status"] == "Failure"
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_exit_status_before_v4_is_text_and_silent_on_success() -> None:
    assert exit_status(0, V2) == b""
    assert b"non-zero exit code: 2" in exit_status(2, V2)
    assert json.loads(error_status("boom", V4))["message"] == "boom"
    assert error_status("boom", V1) == b"boom"


def test_resize_decoder_handles_split_and_back_to_back_objects() -> None:
    dec = ResizeDecoder()
    assert dec.feed(b'{"Width":80,"Hei') == []
    assert dec.feed(b'ght":24}\n{"Width":120,"Height":40}\n') == [(80, 24), (120, 40)]
    assert dec.feed(b'{"Width":0,"Height":0}') == []


def test_port_forward_pairs_by_request_id_in_any_order() -> None:
    pairs = PortForwardPairs()
    assert pairs.add(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}) is None
    assert pairs.add(3, {"streamtype": ["error"], "port": ["81"], "requestid": ["1"]}) is None
    second = pairs.add(5, {"streamtype": ["data"], "port": ["81"], "requestid": ["1"]})
    first = pairs.add(7, {"streamtype": ["data"], "port": ["80"], "requestid": ["0"]})
    assert second is not None
    assert first is not None
    assert (second.port, second.error_stream, second.data_stream) == (81, 3, 5)
    assert (first.port, first.error_stream, first.data_stream) == (80, 1, 7)


def test_port_forward_pairs_without_request_id_use_stream_ids() -> None:
    pairs = PortForwardPairs()
    assert pairs.add(1, {"streamtype": ["error"], "port": ["80"]}) is None
    pair = pairs.add(3, {"streamtype": ["data"], "port": ["80"]})
    assert pair is not None
    assert pair.request_id == "1"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"streamtype": ["data"]}, "port"),
        ({"streamtype": ["data"], "port": ["0"]}, "as a port"),
        ({"streamtype": ["data"], "port": ["http"]}, "as a port"),
        ({"streamtype": ["stdin"], "port": ["80"]}, "invalid stream type"),
    ],
)
def test_port_forward_bad_headers(headers: dict[str, list[str]], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        PortForwardPairs().add(1, headers)


def test_port_forward_duplicate_half_is_refused_and_forget_drops_a_half_pair() -> None:
    pairs = PortForwardPairs()
    pairs.add(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["9"]})
    with pytest.raises(BadRequest, match="already assigned"):
        pairs.add(3, {"streamtype": ["error"], "port": ["80"], "requestid": ["9"]})
    assert pairs.forget(1) == "9"
    assert pairs.forget(1) is None
