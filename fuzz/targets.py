"""What each fuzzer feeds and what counts as a crash (SEC-6).

A target takes the fuzzer's bytes and calls one parser of untrusted input the
way the mesh does; it returns normally for any input the parser handles as
designed (including a clean refusal). Any other exception is a crash: the
fuzzer stops and keeps the input. Targets:

- ``http1``: an ``Http1Session`` fed the bytes as a client in pieces (the piece
  sizes come from the input), routed to an upstream that answers from the rest.
- ``detect``: a ``Detector`` fed the bytes in pieces, then expired.
- ``policy``: every ``policy.linkerd.io`` converter given the bytes as JSON (or
  a structure built from them); converters answer invalid objects, never raise.
- ``kubeconfig``: ``parse_kubeconfig`` of the bytes as text; only
  ``KubeconfigError`` may come out.
- ``transport_header``: a gateway's ``HeaderReader`` fed the bytes in pieces;
  only ``ValueError`` (a malformed header) may come out, and a header it reads
  must encode back to the bytes it came from.

``SEEDS`` are well-formed starting points for each.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from mesh.multicluster.kubeconfig import KubeconfigError, parse_kubeconfig
from mesh.policy import convert as policy_convert
from mesh.proxy import transport_header as th
from mesh.proxy.detect import Detector, NeedMore
from mesh.proxy.http1 import (
    CloseDownstream,
    Http1Session,
    LocalResponse,
    RouteRequest,
    UpstreamConnection,
)
from mesh.proxy.telemetry import Direction

__all__ = ["SEEDS", "TARGETS"]


def _pieces(data: bytes) -> list[bytes]:
    """Split ``data`` after its first byte, which picks the piece size (1..32, or whole)."""
    if not data:
        return [b""]
    size = data[0] % 33
    rest = data[1:]
    if size == 0:
        return [rest]
    return [rest[i : i + size] for i in range(0, len(rest), size)] or [b""]


def http1(data: bytes) -> None:
    split = data.find(b"\xff\xfe")
    request, response = (data, b"") if split < 0 else (data[:split], data[split + 2 :])
    session = Http1Session(Direction.INBOUND, client_id="web.demo.serviceaccount.identity")
    routed = 0
    for piece in [*_pieces(request), b""]:
        commands = session.receive_downstream(piece)
        for command in commands:
            if isinstance(command, RouteRequest):
                routed += 1
                if routed % 2:
                    up = UpstreamConnection("app:8080")
                    session.forward(up, authority=command.head.authority or None)
                    session.receive_upstream(response)
                    session.receive_upstream(b"")
                else:
                    session.respond(LocalResponse.forbidden())
        if any(isinstance(c, CloseDownstream) for c in commands):
            break


def detect(data: bytes) -> None:
    detector = Detector(0.0, 10.0)
    outcome: object = NeedMore(10.0)
    for n, piece in enumerate(_pieces(data)):
        outcome = detector.feed(piece, float(n) * 0.001)
        if not isinstance(outcome, NeedMore):
            break
    if isinstance(outcome, NeedMore):
        detector.expire(11.0)
    assert bytes(detector.buffered) in data or not data


_CONVERTERS: tuple[Callable[[Any], object], ...] = (
    policy_convert.server,
    policy_convert.server_authorization,
    policy_convert.authorization_policy,
    policy_convert.meshtls_authentication,
    policy_convert.network_authentication,
)


def _structure(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        text = data.decode("latin-1")
        return {"metadata": {"name": text[:20], "namespace": "demo"}, "spec": {"x": text}}


def policy(data: bytes) -> None:
    doc = _structure(data)
    if not isinstance(doc, dict):
        doc = {"metadata": {"name": "fuzz", "namespace": "demo"}, "spec": doc}
    for converter in _CONVERTERS:
        converter(doc)


def kubeconfig(data: bytes) -> None:
    with contextlib.suppress(KubeconfigError):
        parse_kubeconfig(data.decode("utf-8", "replace"))


def transport_header(data: bytes) -> None:
    reader = th.HeaderReader()
    stream = _pieces(data)
    outcome: th.NeedMore | th.NotHeader | th.Header = th.NeedMore()
    try:
        for piece in [*stream, b""]:
            outcome = reader.feed(piece)
            if not isinstance(outcome, th.NeedMore):
                break
    except ValueError:
        return
    whole = b"".join(stream)
    if isinstance(outcome, th.Header):
        assert whole.startswith(th.encode(outcome.target) + outcome.rest)
    elif isinstance(outcome, th.NotHeader):
        assert whole.startswith(outcome.data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "http1": http1,
    "detect": detect,
    "policy": policy,
    "kubeconfig": kubeconfig,
    "transport_header": transport_header,
}

_KUBECONFIG = b"""apiVersion: v1
kind: Config
current-context: east
clusters:
- name: east
  cluster:
    server: https://172.30.0.10:6443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSQ==
contexts:
- name: east
  context: {cluster: east, user: link}
users:
- name: link
  user: {token: abc.def.ghi}
"""

SEEDS: dict[str, list[bytes]] = {
    "http1": [
        b"\x00GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        b"\xff\xfeHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"\x05POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n\xff\xfeHTTP/1.1 204 No Content\r\n\r\n",
        b"\x03GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
    ],
    "detect": [
        b"\x00GET / HTTP/1.1\r\n",
        b"\x00PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x07\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03"
        + b"\x00" * 32
        + b"\x00\x00\x02\x00\x2f\x01\x00",
    ],
    "policy": [
        json.dumps(
            {
                "metadata": {"name": "web", "namespace": "demo", "labels": {"a": "b"}},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8080},
            }
        ).encode(),
        json.dumps(
            {
                "metadata": {"name": "authz", "namespace": "demo"},
                "spec": {
                    "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web"},
                    "requiredAuthenticationRefs": [{"kind": "MeshTLSAuthentication", "name": "m"}],
                    "identities": ["*"],
                    "networks": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}],
                },
            }
        ).encode(),
    ],
    "kubeconfig": [_KUBECONFIG],
    "transport_header": [
        b"\x03" + th.encode("db.demo.svc.east.example:5432") + b"\x01payload",
        b"\x00GET / HTTP/1.1\r\n\r\n",
    ],
}
