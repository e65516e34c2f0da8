"""Scenario tests of the SPDY/3.1 server session against a hand-rolled client peer."""

from __future__ import annotations

import struct
import zlib

import pytest

from harness.providers.netns.kubelet.spdy import (
    DICTIONARY,
    FLAG_FIN,
    GOAWAY,
    PING,
    RST_STREAM,
    SYN_REPLY,
    SYN_STREAM,
    WINDOW_UPDATE,
    GoAway,
    HeaderCompressor,
    HeaderDecompressor,
    Headers,
    ProtocolError,
    SpdyServerSession,
    StreamData,
    StreamEnded,
    StreamOpened,
    StreamReset,
    control_frame,
    data_frame,
    decode_header_block,
    encode_header_block,
)


class Client:
    """The API server's side: opens streams, reads what the session sends back."""

    def __init__(self) -> None:
        self.deflate = HeaderCompressor()
        self.inflate = HeaderDecompressor()

    def syn(self, stream_id: int, headers: Headers, fin: bool = False) -> bytes:
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + self.deflate.compress(headers)
        return control_frame(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def frames(self, data: bytes) -> list[tuple[str, int, int, bytes]]:
        """(kind, stream/type, flags, payload) for each frame in ``data``."""
        out = []
        while data:
            first, second = struct.unpack_from(">II", data, 0)
            length = second & 0xFFFFFF
            payload, data = data[8 : 8 + length], data[8 + length :]
            if first & 0x80000000:
                out.append(("control", first & 0xFFFF, second >> 24, payload))
            else:
                out.append(("data", first, second >> 24, payload))
        return out


def test_dictionary_is_the_spdy3_one() -> None:
    # length and zlib dictionary id of the SPDY/3 header dictionary
    assert len(DICTIONARY) == 1423
    assert zlib.adler32(DICTIONARY) == 0xE3C6A7C2


def test_header_block_round_trip_lowercases_and_joins_values() -> None:
    raw = encode_header_block({"StreamType": ["stdout"], "X": ["a", "b"]})
    assert decode_header_block(raw) == {"streamtype": ["stdout"], "x": ["a", "b"]}


def test_header_block_truncated_is_a_protocol_error() -> None:
    raw = encode_header_block({"port": ["8080"]})
    with pytest.raises(ProtocolError):
        decode_header_block(raw[:-2])


def test_streams_open_carry_data_and_end() -> None:
    client, session = Client(), SpdyServerSession()
    wire = client.syn(1, {"streamType": ["error"]}) + client.syn(3, {"streamType": ["stdin"]})
    wire += data_frame(3, b"hello") + data_frame(3, b"", fin=True)
    # deliver one byte at a time: frames may arrive split anywhere
    events = [ev for i in range(len(wire)) for ev in session.receive(wire[i : i + 1])]
    assert events == [
        StreamOpened(1, {"streamtype": ["error"]}, False),
        StreamOpened(3, {"streamtype": ["stdin"]}, False),
        StreamData(3, b"hello"),
        StreamEnded(3),
    ]


def test_reply_send_and_fin_are_framed_for_the_client() -> None:
    client, session = Client(), SpdyServerSession()
    session.receive(client.syn(1, {"streamType": ["stdout"]}))
    session.reply(1)
    session.send(1, b"x" * 20000, fin=True)
    frames = client.frames(session.pending())
    kind, ftype, _, payload = frames[0]
    assert (kind, ftype) == ("control", SYN_REPLY)
    assert struct.unpack_from(">I", payload)[0] == 1
    assert client.inflate.decompress(payload[4:]) == {}
    data = [f for f in frames[1:] if f[0] == "data"]
    assert [len(f[3]) for f in data] == [16384, 3616, 0]
    assert all(f[1] == 1 for f in data)
    assert data[-1][2] == FLAG_FIN
    assert session.pending() == b""


def test_stream_forgotten_once_both_sides_closed() -> None:
    client, session = Client(), SpdyServerSession()
    session.receive(client.syn(1, {}) + data_frame(1, b"", fin=True))
    assert session.is_open(1)
    session.end(1)
    assert not session.is_open(1)
    session.send(1, b"late")  # quietly nothing on a closed stream
    assert b"late" not in session.pending()


def test_peer_ping_is_echoed_and_own_parity_is_not() -> None:
    session = SpdyServerSession()
    session.receive(control_frame(PING, 0, struct.pack(">I", 7)))
    assert session.pending() == control_frame(PING, 0, struct.pack(">I", 7))
    session.receive(control_frame(PING, 0, struct.pack(">I", 8)))
    assert session.pending() == b""


def test_reset_goaway_and_unknown_frames() -> None:
    client, session = Client(), SpdyServerSession()
    session.receive(client.syn(1, {}))
    events = session.receive(
        control_frame(WINDOW_UPDATE, 0, struct.pack(">II", 1, 100))
        + control_frame(RST_STREAM, 0, struct.pack(">II", 1, 5))
        + control_frame(GOAWAY, 0, struct.pack(">II", 1, 0))
    )
    assert events == [StreamReset(1, 5), GoAway(1)]
    session.goaway()
    frames = client.frames(session.pending())
    assert [(f[0], f[1]) for f in frames] == [("control", GOAWAY)]


def test_data_on_unknown_stream_is_answered_with_rst() -> None:
    client, session = Client(), SpdyServerSession()
    assert session.receive(data_frame(5, b"?")) == []
    frames = client.frames(session.pending())
    assert frames[0][1] == RST_STREAM
    assert struct.unpack(">II", frames[0][3]) == (5, 2)


def test_refused_stream_is_reset_without_reply() -> None:
    client, session = Client(), SpdyServerSession()
    session.receive(client.syn(1, {}))
    session.refuse(1)
    frames = client.frames(session.pending())
    assert [f[1] for f in frames] == [RST_STREAM]
    assert struct.unpack(">II", frames[0][3]) == (1, 3)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (struct.pack(">HHI", 0x8002, SYN_STREAM, 4) + b"\0\0\0\1", "version 2"),
        (struct.pack(">HHI", 0x8003, 1, 0x00FFFFFF), "control frame of"),
        (struct.pack(">HHI", 0x8003, RST_STREAM, 2) + b"\0\0", "short control frame"),
    ],
)
def test_malformed_frames_raise(wire: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        SpdyServerSession().receive(wire)


def test_stream_ids_must_increase() -> None:
    client, session = Client(), SpdyServerSession()
    session.receive(client.syn(3, {}))
    with pytest.raises(ProtocolError, match="out of order"):
        session.receive(client.syn(1, {}))
