"""The provider protocol and what a provisioned cluster looks like to the harness."""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.topology import Topology


class ProviderError(RuntimeError):
    """A provider could not create, find or remove clusters; the message says why."""


@dataclass(frozen=True)
class Cluster:
    """A running cluster as the harness sees it (serialisable to the shared state file)."""

    name: str
    domain: str
    trust_domain: str
    kubeconfig: Path
    context: str
    api_server: str  # https://host:port
    node_ips: tuple[str, ...] = ()
    pod_cidr: str = ""
    service_cidr: str = ""
    version: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kubeconfig"] = str(self.kubeconfig)
        d["node_ips"] = list(self.node_ips)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cluster:
        return cls(**{**d, "kubeconfig": Path(d["kubeconfig"]), "node_ips": tuple(d["node_ips"])})


class Provider(Protocol):
    """Creates and removes the clusters of a topology."""

    name: str

    def up(self, topology: Topology) -> list[Cluster]:
        """Create every cluster of the topology and wait until each is usable."""
        ...

    def down(self) -> None:
        """Remove everything ``up`` created; safe to call twice."""
        ...


PROVIDERS = {
    "netns": "harness.providers.netns.provider:NetnsProvider",
    "k3d": "harness.providers.k3d:K3dProvider",
    "existing": "harness.providers.existing:ExistingProvider",
}


def get_provider(name: str, state_dir: Path) -> Provider:
    """Instantiate provider ``name`` keeping its state under ``state_dir``."""
    try:
        target = PROVIDERS[name]
    except KeyError:
        raise ProviderError(
            f"unknown provider {name!r}; choose one of: {', '.join(PROVIDERS)}"
        ) from None
    module, cls = target.split(":")
    provider: Provider = getattr(importlib.import_module(module), cls)(state_dir)
    return provider
