"""Naming functions and their inverses."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.providers.netns.kubelet.naming import (
    container_id,
    log_path,
    node_veth,
    pid_of_container_id,
    pod_netns,
    uid_prefix_of_netns,
)

UID = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"


def test_netns_name_round_trip() -> None:
    name = pod_netns("isth-r1-p-0", UID)
    assert name == "isth-r1-p-0-3f2a1b4c-5d6"
    assert uid_prefix_of_netns("isth-r1-p-0", name) == UID[:12]


@pytest.mark.parametrize(
    "other", ["isth-r1-p-01-3f2a1b4c-5d6", "isth-r1-p-0-node", "k8s", "isth-r1-p-0-3f2a1b4c-5d6x"]
)
def test_other_namespaces_are_not_pod_netns(other: str) -> None:
    assert uid_prefix_of_netns("isth-r1-p-0", other) is None


def test_veth_names_fit_ifnamsiz_and_differ_per_pod() -> None:
    a, b = node_veth(UID), node_veth(UID[::-1])
    assert len(a) <= 15
    assert a.startswith("v")
    assert a != b
    assert node_veth(UID) == a


def test_container_id_round_trip() -> None:
    assert pid_of_container_id(container_id(4242)) == 4242
    assert pid_of_container_id("containerd://abc") is None


def test_log_path_layout() -> None:
    assert log_path(Path("/s"), "u", "app", 2) == Path("/s/pods/u/logs/app/2.log")
