"""The k3d provider: one k3d cluster per topology cluster, all on one Docker network.

Command lines are built by pure functions (unit-tested without Docker); ``K3dProvider``
only runs them. A flat topology gets ``ip route add`` on every node towards every other
cluster's pod CIDR via that cluster's server node; a hierarchical one gets no routes.
What ``up`` creates is recorded in ``<state_dir>/k3d.json`` as it goes, so ``down``
removes it even after a failed ``up``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypedDict

import yaml

from harness import sh
from harness.providers.base import Cluster, ProviderError
from harness.providers.existing import api_server
from harness.topology import ClusterSpec, Topology

PREFIX = "isthmus"
IMAGE_TAG = os.environ.get("ISTHMUS_IMAGE_TAG", "dev")
DISABLED = "traefik,metrics-server,local-storage"  # servicelb stays: LoadBalancer works
IP_FORMAT = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
#: seconds for one `k3d cluster create --wait` (pulls the k3s image on first use),
#: `k3d image import` or `k3d cluster delete`.
CREATE_TIMEOUT = 600.0
NO_DOCKER = "on machines without Docker use `--provider netns`"


class Runner(Protocol):
    def __call__(self, *argv: str, check: bool = True, timeout: float = 60) -> str: ...


def cluster_name(spec: ClusterSpec, prefix: str = PREFIX) -> str:
    return f"{prefix}-{spec.name}"


def network_name(topology: Topology, prefix: str = PREFIX) -> str:
    return f"{prefix}-{topology.name}"


def project_images(tag: str = IMAGE_TAG) -> list[str]:
    return [f"isthmus/isthmus:{tag}", f"isthmus/testapps:{tag}"]


def node_containers(spec: ClusterSpec, prefix: str = PREFIX) -> list[str]:
    """Docker containers of a cluster's nodes, server first (k3d's naming)."""
    name = cluster_name(spec, prefix)
    return [f"k3d-{name}-server-0"] + [f"k3d-{name}-agent-{i}" for i in range(spec.nodes - 1)]


def network_create_command(topology: Topology, prefix: str = PREFIX) -> list[str]:
    net = network_name(topology, prefix)
    return ["docker", "network", "create", "--subnet", str(topology.underlay), net]


def cluster_create_command(spec: ClusterSpec, network: str, prefix: str = PREFIX) -> list[str]:
    argv = ["k3d", "cluster", "create", cluster_name(spec, prefix), "--network", network]
    argv += ["--image", f"rancher/k3s:{spec.version}-k3s1", "--no-lb"]
    for arg in (
        f"--cluster-domain={spec.domain}",
        f"--cluster-cidr={spec.pod_cidr}",
        f"--service-cidr={spec.service_cidr}",
        f"--disable={DISABLED}",
    ):
        argv += ["--k3s-arg", f"{arg}@server:*"]
    if spec.nodes > 1:
        argv += ["--agents", str(spec.nodes - 1)]
    return [*argv, "--wait", "--kubeconfig-update-default=false"]


def image_import_command(
    spec: ClusterSpec, images: Sequence[str], prefix: str = PREFIX
) -> list[str]:
    return ["k3d", "image", "import", *images, "-c", cluster_name(spec, prefix)]


def create_commands(
    topology: Topology, tag: str = IMAGE_TAG, prefix: str = PREFIX
) -> list[list[str]]:
    """Every cluster create, then every image import, in order."""
    net = network_name(topology, prefix)
    creates = [cluster_create_command(s, net, prefix) for s in topology.clusters]
    imports = [image_import_command(s, project_images(tag), prefix) for s in topology.clusters]
    return creates + imports


def node_ip_command(container: str) -> list[str]:
    return ["docker", "inspect", "-f", IP_FORMAT, container]


def route_commands(
    topology: Topology, node_ips: Mapping[str, str], prefix: str = PREFIX
) -> list[list[str]]:
    """``ip route add`` on every node to every other cluster's pod CIDR (flat only).

    ``node_ips`` maps node container names to their address on the shared network.
    """
    if topology.network != "flat":
        return []
    commands = []
    for here in topology.clusters:
        for there in topology.clusters:
            if there is here:
                continue
            via = node_ips[node_containers(there, prefix)[0]]
            for node in node_containers(here, prefix):
                route = ["ip", "route", "add", str(there.pod_cidr), "via", via]
                commands.append(["docker", "exec", node, *route])
    return commands


def kubeconfig_for(raw: str, name: str) -> dict[str, Any]:
    """k3d's kubeconfig with its context, cluster and user all renamed to ``name``."""
    config: dict[str, Any] = yaml.safe_load(raw)
    for kind in ("contexts", "clusters", "users"):
        for entry in config.get(kind) or []:
            entry["name"] = name
    for ctx in config.get("contexts") or []:
        ctx["context"].update(cluster=name, user=name)
    config["current-context"] = name
    return config


class _State(TypedDict):
    """What ``up`` created, saved as it goes."""

    network: str
    network_created: bool
    clusters: list[str]  # k3d cluster names
    kubeconfigs: list[str]


class K3dProvider:
    """k3d clusters on one Docker network; needs k3d, Docker and image access."""

    name = "k3d"

    def __init__(
        self,
        state_dir: Path,
        *,
        run: Runner = sh.run,
        which: Callable[[str], str | None] = shutil.which,
        tag: str = IMAGE_TAG,
        prefix: str = PREFIX,
    ) -> None:
        self.state_dir, self.run, self.which = state_dir, run, which
        self.tag, self.prefix = tag, prefix
        self.state_file = state_dir / "k3d.json"

    def preflight(self) -> None:
        """ProviderError unless k3d, docker and a running Docker engine are there."""
        self._tools()
        try:
            self.run("docker", "info", "--format", "{{.ServerVersion}}", timeout=30)
        except (sh.CommandError, subprocess.TimeoutExpired) as e:
            raise ProviderError(f"the Docker engine is not running ({e}); {NO_DOCKER}") from e
        for image in project_images(self.tag):
            if not self._ok("docker", "image", "inspect", image):
                raise ProviderError(
                    f"image {image} is not in the local Docker engine; build it first "
                    f"(docker build -t {image} .)"
                )

    def up(self, topology: Topology) -> list[Cluster]:
        self.preflight()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        net = network_name(topology, self.prefix)
        state = _State(network=net, network_created=False, clusters=[], kubeconfigs=[])
        self._save(state)
        try:
            if not self._ok("docker", "network", "inspect", net):
                self.run(*network_create_command(topology, self.prefix))
                state["network_created"] = True
                self._save(state)
            for argv in create_commands(topology, self.tag, self.prefix):
                if argv[:3] == ["k3d", "cluster", "create"]:
                    state["clusters"].append(argv[3])  # recorded before it exists
                    self._save(state)
                self.run(*argv, timeout=CREATE_TIMEOUT)
            ips = {
                node: self.run(*node_ip_command(node)).strip()
                for spec in topology.clusters
                for node in node_containers(spec, self.prefix)
            }
            for argv in route_commands(topology, ips, self.prefix):
                self.run(*argv)
            clusters = []
            for spec in topology.clusters:
                path = self.state_dir / f"{spec.name}.kubeconfig"
                state["kubeconfigs"].append(str(path))
                self._save(state)
                clusters.append(self._cluster(spec, ips, net, path))
        except sh.CommandError as e:
            raise ProviderError(f"k3d: {e} (run `down` to remove what was created)") from e
        return clusters

    def _cluster(
        self, spec: ClusterSpec, ips: Mapping[str, str], network: str, path: Path
    ) -> Cluster:
        name = cluster_name(spec, self.prefix)
        config = kubeconfig_for(self.run("k3d", "kubeconfig", "get", name), spec.name)
        path.touch()
        path.chmod(0o600)
        path.write_text(yaml.safe_dump(config))
        return Cluster(
            name=spec.name,
            domain=spec.domain,
            trust_domain=spec.trust_domain,
            kubeconfig=path,
            context=spec.name,
            api_server=api_server(config, spec.name, path),
            node_ips=tuple(ips[n] for n in node_containers(spec, self.prefix)),
            pod_cidr=str(spec.pod_cidr),
            service_cidr=str(spec.service_cidr),
            version=spec.version,
            extra={"k3d_cluster": name, "network": network},
        )

    def down(self) -> None:
        """Delete the recorded clusters, then the network if ``up`` created it."""
        if not self.state_file.exists():
            return
        self._tools()
        state: _State = json.loads(self.state_file.read_text())
        steps = [("k3d", "cluster", "delete", name) for name in reversed(state["clusters"])]
        if state["network_created"]:
            steps.append(("docker", "network", "rm", state["network"]))
        errors = []
        for argv in steps:
            try:
                self.run(*argv, timeout=CREATE_TIMEOUT)
            except sh.CommandError as e:
                errors.append(str(e))
        if errors:
            raise ProviderError("k3d teardown incomplete:\n" + "\n".join(errors))
        for path in state["kubeconfigs"]:
            Path(path).unlink(missing_ok=True)
        self.state_file.unlink()

    def _tools(self) -> None:
        for tool in ("docker", "k3d"):
            if self.which(tool) is None:
                raise ProviderError(f"the k3d provider needs `{tool}` on PATH; {NO_DOCKER}")

    def _ok(self, *argv: str) -> bool:
        try:
            self.run(*argv)
        except sh.CommandError:
            return False
        return True

    def _save(self, state: _State) -> None:
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")
