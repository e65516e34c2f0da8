"""The existing provider: clusters the user already has, named by kube context.

Each cluster of the topology names a ``context`` (default: the cluster's name) in the
kubeconfig given by ``$KUBECONFIG`` (or ``~/.kube/config``). ``up`` only checks that
the contexts exist and reads their API servers; nothing is created, and ``down``
removes nothing. Kubeconfigs are read with PyYAML: no cluster is contacted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.providers.base import Cluster, ProviderError
from harness.topology import Topology

Kubeconfig = dict[str, Any]


def kubeconfig_paths(env: Mapping[str, str] = os.environ) -> list[Path]:
    """The kubeconfig files kubectl would read: ``$KUBECONFIG`` entries, else ~/.kube/config."""
    entries = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in entries] or [Path.home() / ".kube" / "config"]


def read_kubeconfig(path: Path) -> Kubeconfig:
    """Parse one kubeconfig file; ProviderError if it is missing or not a kubeconfig."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ProviderError(f"cannot read kubeconfig {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ProviderError(f"kubeconfig {path} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProviderError(f"kubeconfig {path} is not a mapping")
    return data


def _named(config: Kubeconfig, kind: str) -> dict[str, dict[str, Any]]:
    """``contexts``/``clusters``/``users`` entries by name (the body under ``kind[:-1]``)."""
    return {
        e["name"]: e.get(kind[:-1]) or {}
        for e in config.get(kind) or []
        if isinstance(e, dict) and isinstance(e.get("name"), str)
    }


def context_names(config: Kubeconfig) -> list[str]:
    return list(_named(config, "contexts"))


def api_server(config: Kubeconfig, context: str, where: Path | str = "kubeconfig") -> str:
    """The API server URL of ``context``; ProviderError if the context is incomplete."""
    ctx = _named(config, "contexts").get(context)
    if ctx is None:
        raise ProviderError(f"{where}: no context {context!r}")
    cluster, user = ctx.get("cluster"), ctx.get("user")
    server = _named(config, "clusters").get(str(cluster), {}).get("server")
    if not isinstance(server, str) or not server:
        raise ProviderError(
            f"{where}: context {context!r} names cluster {cluster!r}, which has no server "
            "in this file (merge it with `kubectl config view --flatten`)"
        )
    if user is not None and user not in _named(config, "users"):
        raise ProviderError(f"{where}: context {context!r} names user {user!r}, not in this file")
    return server


class ExistingProvider:
    """Uses existing kube contexts; creates and removes nothing."""

    name = "existing"

    def __init__(
        self,
        state_dir: Path,
        *,
        node_ips: Mapping[str, Sequence[str]] | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.state_dir = state_dir
        self.node_ips = dict(node_ips or {})
        self.env = env

    def up(self, topology: Topology) -> list[Cluster]:
        paths = kubeconfig_paths(self.env)
        configs = [(p, read_kubeconfig(p)) for p in paths if p.exists() or len(paths) == 1]
        available = sorted({c for _, cfg in configs for c in context_names(cfg)})
        where = os.pathsep.join(str(p) for p in paths)
        clusters: list[Cluster] = []
        used: dict[str, str] = {}
        for spec in topology.clusters:
            context = spec.context or spec.name
            if context in used:
                raise ProviderError(
                    f"clusters {used[context]!r} and {spec.name!r} both use context {context!r}"
                )
            used[context] = spec.name
            # kubectl's merge rule: the first file that defines a context wins.
            found = next(((p, cfg) for p, cfg in configs if context in context_names(cfg)), None)
            if found is None:
                raise ProviderError(
                    f"cluster {spec.name!r}: no context {context!r} in {where}; available "
                    f"contexts: {', '.join(available) or '(none)'}. Name one with `context:` "
                    "in the topology."
                )
            path, cfg = found
            clusters.append(
                Cluster(
                    name=spec.name,
                    domain=spec.domain,
                    trust_domain=spec.trust_domain,
                    kubeconfig=path,
                    context=context,
                    api_server=api_server(cfg, context, path),
                    node_ips=tuple(self.node_ips.get(spec.name, ())),
                    pod_cidr=str(spec.pod_cidr),
                    service_cidr=str(spec.service_cidr),
                    version=spec.version,
                )
            )
        return clusters

    def down(self) -> None:
        """Nothing to remove: the clusters belong to the user."""
