"""Pod address allocation."""

from __future__ import annotations

import pytest

from harness.providers.netns.kubelet.ipam import AddressesExhausted, Ipam


def test_skips_network_and_first_address_and_is_idempotent() -> None:
    ipam = Ipam("10.42.1.0/24")
    assert ipam.allocate("a") == "10.42.1.2"
    assert ipam.allocate("b") == "10.42.1.3"
    assert ipam.allocate("a") == "10.42.1.2"


def test_released_addresses_come_back_after_the_rest() -> None:
    ipam = Ipam("10.42.1.0/24")
    ipam.allocate("a")
    ipam.allocate("b")
    assert ipam.release("a") == "10.42.1.2"
    assert ipam.allocate("c") == "10.42.1.4"


def test_exhaustion_never_hands_out_broadcast() -> None:
    ipam = Ipam("10.42.1.0/29")  # .2 .. .6 usable
    got = [ipam.allocate(str(i)) for i in range(5)]
    assert got == [f"10.42.1.{i}" for i in range(2, 7)]
    with pytest.raises(AddressesExhausted):
        ipam.allocate("x")


def test_json_round_trip_drops_addresses_outside_a_new_cidr() -> None:
    ipam = Ipam("10.42.1.0/24")
    ipam.allocate("a")
    assert Ipam.from_json(ipam.to_json(), "10.42.1.0/24").allocations == {"a": "10.42.1.2"}
    assert Ipam.from_json(ipam.to_json(), "10.42.2.0/24").allocations == {}
    assert Ipam.from_json("", "10.42.2.0/24").allocations == {}
