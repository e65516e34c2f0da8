"""Gateway mode's rules, sans I/O: admission and where each authority may go."""

from __future__ import annotations

import pytest

from mesh.proxy.discovery import Address
from mesh.proxy.envconfig import EnvError, load
from mesh.proxy.gateway import (
    GatewaySettings,
    Refusal,
    admit_client,
    admit_hello,
    forwarded_header,
    route,
)
from mesh.proxy.http1 import LocalResponse, RequestHead

GW = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.east"
SETTINGS = GatewaySettings.parse("svc.east.example.")


def head(authority: str | None, *headers: tuple[bytes, bytes], target: str = "/") -> RequestHead:
    host = ((b"host", authority.encode()),) if authority is not None else ()
    return RequestHead("GET", target, (*host, *headers))


@pytest.mark.parametrize(
    ("tls", "sni", "expected"),
    [
        (False, None, Refusal.PLAINTEXT),
        (True, None, Refusal.WRONG_SERVER_NAME),
        (True, "web.default.serviceaccount.identity.linkerd.east", Refusal.WRONG_SERVER_NAME),
        (True, GW, None),
    ],
)
def test_admission_by_client_hello(tls: bool, sni: str | None, expected: Refusal | None) -> None:
    assert admit_hello(tls=tls, server_name=sni, local_identity=GW) == expected


def test_admission_needs_a_client_identity() -> None:
    assert admit_client(None) is Refusal.NO_CLIENT_IDENTITY
    assert admit_client("") is Refusal.NO_CLIENT_IDENTITY
    assert admit_client("web.default.serviceaccount.identity.linkerd.west") is None


@pytest.mark.parametrize(
    ("request_head", "expected"),
    [
        (head("web.shop.svc.east.example:8080"), Address("web.shop.svc.east.example", 8080)),
        (head("Web.Shop.svc.East.Example.:80"), Address("web.shop.svc.east.example", 80)),
        (
            head(None, target="http://web.shop.svc.east.example:81/x"),
            Address("web.shop.svc.east.example", 81),
        ),
        (head("web.shop.svc.east.example"), 400),
        (head(None), 400),
        (head("web.shop.svc.east.example:0"), 400),
        (head("10.0.0.1:80"), 403),
        (head("[::1]:80"), 400),
        (head("web.svc.east.example:80"), 403),
        # One endpoint of a headless service (a per-host mirror, CONF-29); nothing deeper.
        (
            head("pod-0.web.shop.svc.east.example:80"),
            Address("pod-0.web.shop.svc.east.example", 80),
        ),
        (head("x.pod-0.web.shop.svc.east.example:80"), 403),
        (head("web.shop.svc.west.example:80"), 403),
        (head("example.com:443"), 403),
        (head("web.shop.svc.east.example.evil.com:80"), 403),
        (head("web.shop.svc.east.example:80", (b"forwarded", f'by="{GW}";for="x"'.encode())), 502),
        (
            head("web.shop.svc.east.example:80", (b"forwarded", b'by="other";for="x"')),
            Address("web.shop.svc.east.example", 80),
        ),
    ],
)
def test_routing_by_authority(request_head: RequestHead, expected: Address | int) -> None:
    outcome = route(request_head, SETTINGS, GW)
    if isinstance(expected, Address):
        assert outcome == expected
    else:
        assert isinstance(outcome, LocalResponse)
        assert outcome.status == expected
        assert outcome.error


def test_suffixes_are_normalised_and_the_root_is_refused() -> None:
    assert GatewaySettings.parse(" svc.East.example. , svc.b ").suffixes == (
        "svc.east.example",
        "svc.b",
    )
    assert not GatewaySettings.parse("").enabled
    with pytest.raises(ValueError, match="open proxy"):
        GatewaySettings.parse(".")


def test_the_forwarded_header_names_gateway_and_client() -> None:
    assert forwarded_header(GW, "c") == (b"forwarded", f'by="{GW}";for="c"'.encode())


def test_the_environment_turns_gateway_mode_on() -> None:
    env = {"LINKERD2_PROXY_IDENTITY_DISABLED": "1"}
    assert load(env).proxy_config().gateway_suffixes == ()
    on = load({**env, "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES": "svc.east.example."})
    assert on.proxy_config().gateway_suffixes == ("svc.east.example",)
    with pytest.raises(EnvError, match="LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES"):
        load({**env, "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES": "."})
