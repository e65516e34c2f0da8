"""Loading a mesh's messages from its .proto at run time, in a private descriptor pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.adapters.isthmus import IsthmusAdapter
from harness.adapters.protoload import ProtoError, load_messages

PROTO = """\
syntax = "proto3";
package demo.v1;
import "google/protobuf/timestamp.proto";
message Ask { string identity = 1; bytes token = 2; }
message Answer { repeated bytes chain = 1; google.protobuf.Timestamp until = 2; }
"""


def test_messages_round_trip(tmp_path: Path) -> None:
    proto = tmp_path / "demo.proto"
    proto.write_text(PROTO)
    classes = load_messages(proto, ["demo.v1.Ask", "demo.v1.Answer"])
    ask = classes["demo.v1.Ask"](identity="a.b", token=b"t")
    again = classes["demo.v1.Ask"].FromString(ask.SerializeToString())
    assert (again.identity, again.token) == ("a.b", b"t")
    answer = classes["demo.v1.Answer"](chain=[b"x"])
    answer.until.seconds = 5
    assert classes["demo.v1.Answer"].FromString(answer.SerializeToString()).until.seconds == 5


def test_unknown_message_and_broken_proto_are_errors(tmp_path: Path) -> None:
    proto = tmp_path / "demo.proto"
    proto.write_text(PROTO)
    with pytest.raises(ProtoError, match=r"declares no message demo\.v1\.Nope"):
        load_messages(proto, ["demo.v1.Nope"])
    proto.write_text("syntax = 'proto3'; message {")
    with pytest.raises(ProtoError, match="protoc could not compile"):
        load_messages(proto, ["demo.v1.Ask"])


def test_the_isthmus_identity_api_loads() -> None:
    api = IsthmusAdapter.identity_api
    classes = load_messages(api.proto, [api.request, api.response])
    request = classes[api.request](identity="x", token=b"t", certificate_signing_request=b"c")
    assert request.identity == "x"
