"""Authorities a proxy asks about, and the annotation port lists that shape answers."""

from __future__ import annotations

import pytest

from mesh.destination.authority import AuthorityError, IpTarget, ServiceTarget, parse
from mesh.k8s.annotations import PortRanges, parse_ports

DOMAIN = "east.example"


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("web.shop.svc.east.example:80", ServiceTarget("shop", "web", 80, DOMAIN)),
        ("web.shop.svc.east.example", ServiceTarget("shop", "web", 80, DOMAIN)),
        ("Web.Shop.svc.East.Example.:8080", ServiceTarget("shop", "web", 8080, DOMAIN)),
        ("web-0.web.shop.svc.east.example:80", ServiceTarget("shop", "web", 80, DOMAIN, "web-0")),
        ("10.0.0.1:8080", IpTarget("10.0.0.1", 8080)),
        ("10.0.0.1", IpTarget("10.0.0.1", 80)),
        ("[fd00::1]:443", IpTarget("fd00::1", 443)),
        ("fd00::1", IpTarget("fd00::1", 80)),
    ],
)
def test_parse(text: str, target: ServiceTarget | IpTarget) -> None:
    assert parse(text, DOMAIN) == target


@pytest.mark.parametrize(
    "target",
    [
        ServiceTarget("shop", "web", 80, DOMAIN),
        ServiceTarget("shop", "web", 80, DOMAIN, "web-0"),
        IpTarget("10.0.0.1", 8080),
        IpTarget("fd00::1", 443),
    ],
)
def test_round_trip(target: ServiceTarget | IpTarget) -> None:
    assert parse(str(target), DOMAIN) == target


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty authority"),
        ("web.shop.svc.cluster.local:80", "not a service in this cluster's domain"),
        ("example.com:443", "not a service in this cluster's domain"),
        ("shop.svc.east.example:80", "expected <svc>.<ns>.svc.east.example"),
        ("a.b.web.shop.svc.east.example:80", "expected <svc>.<ns>.svc.east.example"),
        ("web..svc.east.example:80", "expected <svc>.<ns>.svc.east.example"),
        ("web.shop.svc.east.example:http", "port 'http' is not a number"),
        ("web.shop.svc.east.example:0", "port '0' is not a number in 1-65535"),
        ("web.shop.svc.east.example:70000", "not a number in 1-65535"),
        ("web.shop.svc.east.example:", "empty port"),
        ("[fd00::1", "malformed IPv6"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(AuthorityError, match=message.replace("(", r"\(")):
        parse(text, DOMAIN)


@pytest.mark.parametrize(
    ("value", "ports", "absent"),
    [
        ("3306", {3306}, {3307}),
        (" 25, 587 ,3306", {25, 587, 3306}, {80}),
        ("8000-8002", {8000, 8001, 8002}, {7999, 8003}),
        ("http", {8080}, {80}),
        ("nope, 0, 70000, 9-1, x-y", set(), {0, 1, 9, 70000}),
        ("", set(), {80}),
    ],
)
def test_parse_ports(value: str, ports: set[int], absent: set[int]) -> None:
    parsed = parse_ports(value, lambda name: [8080] if name == "http" else [])
    assert all(p in parsed for p in ports)
    assert not any(p in parsed for p in absent)
    assert bool(parsed) == bool(ports)


def test_port_ranges_print_as_annotations_do() -> None:
    assert str(parse_ports("80,8000-8002,443")) == "80,443,8000-8002"
    assert str(PortRanges.of(5, 3)) == "3,5"
