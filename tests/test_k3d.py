"""The k3d provider's command lines, exactly, and its up/down flow against a fake runner."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.providers.base import ProviderError, get_provider
from harness.providers.k3d import (
    K3dProvider,
    create_commands,
    kubeconfig_for,
    network_create_command,
    node_containers,
    route_commands,
)
from harness.sh import CommandError
from harness.topology import load, parse

DISABLE = "--k3s-arg --disable=traefik,metrics-server,local-storage@server:*"
TAIL = "--wait --kubeconfig-update-default=false"
IPS = {
    "k3d-isthmus-source-server-0": "172.30.0.2",
    "k3d-isthmus-target-server-0": "172.30.0.3",
    "k3d-isthmus-west-server-0": "172.30.0.4",
}


def cmds(*lines: str) -> list[list[str]]:
    return [shlex.split(line) for line in lines]


def create(name: str, network: str, pod: str, svc: str, extra: str = "") -> str:
    return (
        f"k3d cluster create isthmus-{name} --network isthmus-{network} "
        "--image rancher/k3s:v1.35.4-k3s1 --no-lb "
        f"--k3s-arg --cluster-domain={name}@server:* --k3s-arg --cluster-cidr={pod}@server:* "
        f"--k3s-arg --service-cidr={svc}@server:* {DISABLE} {extra}{TAIL}"
    )


def imports(name: str) -> str:
    return f"k3d image import isthmus/isthmus:v9 isthmus/testapps:v9 -c isthmus-{name}"


def route(node: str, cidr: str, via: str) -> str:
    return f"docker exec k3d-isthmus-{node}-server-0 ip route add {cidr} via {via}"


def test_two_flat() -> None:
    topo = load("two-flat")
    assert (
        network_create_command(topo)
        == cmds("docker network create --subnet 172.30.0.0/24 isthmus-two-flat")[0]
    )
    assert create_commands(topo, tag="v9") == cmds(
        create("source", "two-flat", "10.42.0.0/16", "10.96.0.0/16"),
        create("target", "two-flat", "10.23.0.0/16", "10.97.0.0/16"),
        imports("source"),
        imports("target"),
    )
    assert route_commands(topo, IPS) == cmds(
        route("source", "10.23.0.0/16", "172.30.0.3"),
        route("target", "10.42.0.0/16", "172.30.0.2"),
    )


def test_two_hierarchical_has_no_routes() -> None:
    topo = load("two-hierarchical")
    assert create_commands(topo, tag="v9") == cmds(
        create("source", "two-hierarchical", "10.42.0.0/16", "10.96.0.0/16"),
        create("target", "two-hierarchical", "10.23.0.0/16", "10.97.0.0/16"),
        imports("source"),
        imports("target"),
    )
    assert route_commands(topo, IPS) == []


def test_three_flat_routes_every_ordered_pair() -> None:
    topo = load("three-flat")
    assert create_commands(topo, tag="v9")[2] == shlex.split(
        create("west", "three-flat", "10.52.0.0/16", "10.98.0.0/16")
    )
    assert route_commands(topo, IPS) == cmds(
        route("source", "10.23.0.0/16", "172.30.0.3"),
        route("source", "10.52.0.0/16", "172.30.0.4"),
        route("target", "10.42.0.0/16", "172.30.0.2"),
        route("target", "10.52.0.0/16", "172.30.0.4"),
        route("west", "10.42.0.0/16", "172.30.0.2"),
        route("west", "10.23.0.0/16", "172.30.0.3"),
    )


def test_agents_and_their_routes() -> None:
    topo = parse(
        {
            "name": "big",
            "defaults": {"version": "1.34"},
            "clusters": [
                {"name": "a", "pod_cidr": "10.1.0.0/16", "service_cidr": "10.2.0.0/16", "nodes": 3},
                {"name": "b", "pod_cidr": "10.3.0.0/16", "service_cidr": "10.4.0.0/16"},
            ],
        }
    )
    a = topo.clusters[0]
    assert node_containers(a) == [
        "k3d-isthmus-a-server-0",
        "k3d-isthmus-a-agent-0",
        "k3d-isthmus-a-agent-1",
    ]
    line = create_commands(topo, tag="v9")[0]
    assert "rancher/k3s:v1.34.4-k3s1" in line
    assert line[-4:] == ["--agents", "2", "--wait", "--kubeconfig-update-default=false"]
    ips = {"k3d-isthmus-a-server-0": "172.30.0.2", "k3d-isthmus-b-server-0": "172.30.0.5"}
    assert [r[2] for r in route_commands(topo, ips) if r[-1] == "172.30.0.5"] == node_containers(a)


K3D_KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster: {certificate-authority-data: Q0E=, server: 'https://0.0.0.0:41234'}
  name: k3d-isthmus-source
contexts:
- context: {cluster: k3d-isthmus-source, user: admin@k3d-isthmus-source}
  name: k3d-isthmus-source
current-context: k3d-isthmus-source
kind: Config
users:
- name: admin@k3d-isthmus-source
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def test_kubeconfig_renamed_to_cluster_name() -> None:
    config = kubeconfig_for(K3D_KUBECONFIG, "source")
    assert config["current-context"] == "source"
    assert config["contexts"] == [
        {"name": "source", "context": {"cluster": "source", "user": "source"}}
    ]
    assert config["clusters"][0]["name"] == config["users"][0]["name"] == "source"
    assert config["clusters"][0]["cluster"]["server"] == "https://0.0.0.0:41234"


class FakeRunner:
    """Answers the commands the provider is expected to run; fails loudly on any other."""

    def __init__(self, missing: Iterable[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.missing = tuple(missing)

    def __call__(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        self.calls.append(list(argv))
        line = " ".join(argv)
        if line.startswith(self.missing):
            raise CommandError(argv, 1, "[]", "Error: No such object")
        if line.startswith("docker inspect -f"):
            return IPS[argv[-1]] + "\n"
        if line.startswith("k3d kubeconfig get"):
            return K3D_KUBECONFIG.replace("isthmus-source", argv[-1])
        known = ("docker info", "docker image inspect", "docker network", "docker exec", "k3d ")
        if line.startswith(known):
            return ""
        raise AssertionError(f"unexpected command: {line}")


def provider(
    tmp_path: Path, runner: FakeRunner, tools: tuple[str, ...] = ("docker", "k3d")
) -> K3dProvider:
    return K3dProvider(
        tmp_path, run=runner, which=lambda t: f"/usr/bin/{t}" if t in tools else None, tag="v9"
    )


def test_up_then_down(tmp_path: Path) -> None:
    runner = FakeRunner(missing={"docker network inspect"})
    k3d = provider(tmp_path, runner)
    clusters = k3d.up(load("two-flat"))

    ran = [" ".join(c) for c in runner.calls]
    assert ran[:4] == [
        "docker info --format {{.ServerVersion}}",
        "docker image inspect isthmus/isthmus:v9",
        "docker image inspect isthmus/testapps:v9",
        "docker network inspect isthmus-two-flat",
    ]
    assert ran[4] == "docker network create --subnet 172.30.0.0/24 isthmus-two-flat"
    assert runner.calls[5:9] == create_commands(load("two-flat"), tag="v9")
    assert runner.calls[11:13] == route_commands(load("two-flat"), IPS)

    source, target = clusters
    assert (source.name, source.context, source.domain) == ("source", "source", "source")
    assert source.api_server == "https://0.0.0.0:41234"
    assert source.node_ips == ("172.30.0.2",)
    assert target.node_ips == ("172.30.0.3",)
    assert source.kubeconfig == tmp_path / "source.kubeconfig"
    written: dict[str, Any] = yaml.safe_load(source.kubeconfig.read_text())
    assert written["current-context"] == "source"
    assert source.kubeconfig.stat().st_mode & 0o777 == 0o600

    state = json.loads((tmp_path / "k3d.json").read_text())
    assert state["clusters"] == ["isthmus-source", "isthmus-target"]
    assert state["network_created"] is True

    runner.calls.clear()
    k3d.down()
    assert [" ".join(c) for c in runner.calls] == [
        "k3d cluster delete isthmus-target",
        "k3d cluster delete isthmus-source",
        "docker network rm isthmus-two-flat",
    ]
    assert list(tmp_path.iterdir()) == []
    runner.calls.clear()
    k3d.down()  # safe twice
    assert runner.calls == []


def test_existing_network_is_kept(tmp_path: Path) -> None:
    runner = FakeRunner()
    k3d = provider(tmp_path, runner)
    k3d.up(load("two-hierarchical"))
    assert not any(c[:3] == ["docker", "network", "create"] for c in runner.calls)
    assert not any(c[:2] == ["docker", "exec"] for c in runner.calls)
    runner.calls.clear()
    k3d.down()
    assert [c[:3] for c in runner.calls] == [["k3d", "cluster", "delete"]] * 2


def test_failed_create_is_recorded_for_down(tmp_path: Path) -> None:
    runner = FakeRunner(missing={"k3d cluster create isthmus-target"})
    k3d = provider(tmp_path, runner)
    with pytest.raises(ProviderError, match=r"k3d cluster create isthmus-target .* exited 1"):
        k3d.up(load("two-flat"))
    state = json.loads((tmp_path / "k3d.json").read_text())
    assert state["clusters"] == ["isthmus-source", "isthmus-target"]


@pytest.mark.parametrize(
    ("tools", "missing", "message"),
    [
        (
            ("docker",),
            set(),
            "needs `k3d` on PATH; on machines without Docker use `--provider netns`",
        ),
        (("k3d",), set(), "needs `docker` on PATH"),
        (("docker", "k3d"), {"docker info"}, "Docker engine is not running .*--provider netns"),
        (
            ("docker", "k3d"),
            {"docker image inspect isthmus/testapps"},
            "isthmus/testapps:v9 is not",
        ),
    ],
)
def test_preflight_errors(
    tmp_path: Path, tools: tuple[str, ...], missing: set[str], message: str
) -> None:
    runner = FakeRunner(missing=missing)
    with pytest.raises(ProviderError, match=message):
        provider(tmp_path, runner, tools).up(load("two-flat"))
    assert not any(c[0] == "k3d" for c in runner.calls)


def test_registered(tmp_path: Path) -> None:
    assert isinstance(get_provider("k3d", tmp_path), K3dProvider)
