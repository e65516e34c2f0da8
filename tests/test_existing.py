"""The existing provider: finds the topology's contexts in a kubeconfig; creates nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.providers.base import ProviderError, get_provider
from harness.providers.existing import ExistingProvider, kubeconfig_paths
from harness.topology import Topology, parse


def kubeconfig(path: Path, contexts: dict[str, str]) -> Path:
    """Write a kubeconfig with one context per entry (context name -> server URL)."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"c-{n}", "cluster": {"server": s}} for n, s in contexts.items()],
        "users": [{"name": f"u-{n}", "user": {"token": "t"}} for n in contexts],
        "contexts": [
            {"name": n, "context": {"cluster": f"c-{n}", "user": f"u-{n}"}} for n in contexts
        ],
        "current-context": next(iter(contexts), ""),
    }
    path.write_text(yaml.safe_dump(config))
    return path


def topology(
    source: dict[str, Any] | None = None, target: dict[str, Any] | None = None
) -> Topology:
    return parse(
        {
            "name": "mine",
            "clusters": [
                {"name": "source", "pod_cidr": "10.42.0.0/16", "service_cidr": "10.96.0.0/16"}
                | (source or {}),
                {"name": "target", "pod_cidr": "10.23.0.0/16", "service_cidr": "10.97.0.0/16"}
                | (target or {}),
            ],
        }
    )


def test_contexts_named_by_cluster_or_context_field(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "config",
        {"source": "https://10.0.0.1:6443", "kind-east": "https://127.0.0.1:40000"},
    )
    provider = ExistingProvider(
        tmp_path / "state", env={"KUBECONFIG": str(path)}, node_ips={"target": ["192.0.2.7"]}
    )
    source, target = provider.up(topology(target={"context": "kind-east"}))
    assert (source.name, source.context, source.api_server) == (
        "source",
        "source",
        "https://10.0.0.1:6443",
    )
    assert (target.name, target.context, target.api_server) == (
        "target",
        "kind-east",
        "https://127.0.0.1:40000",
    )
    assert source.kubeconfig == target.kubeconfig == path
    assert source.node_ips == ()
    assert target.node_ips == ("192.0.2.7",)
    assert (target.domain, target.pod_cidr, target.version) == ("target", "10.23.0.0/16", "v1.35.4")
    provider.down()
    assert path.exists()
    assert not (tmp_path / "state").exists()


def test_missing_context_lists_available(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"source": "https://a:6443", "prod": "https://b:6443"})
    provider = ExistingProvider(tmp_path, env={"KUBECONFIG": str(path)})
    with pytest.raises(ProviderError) as err:
        provider.up(topology())
    message = str(err.value)
    assert f"cluster 'target': no context 'target' in {path}" in message
    assert "available contexts: prod, source" in message
    assert "`context:`" in message


def test_kubeconfig_list_first_definition_wins(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", {"source": "https://first:6443"})
    second = kubeconfig(
        tmp_path / "b", {"source": "https://second:6443", "target": "https://t:6443"}
    )
    env = {"KUBECONFIG": os.pathsep.join([str(tmp_path / "absent"), str(first), str(second)])}
    source, target = ExistingProvider(tmp_path, env=env).up(topology())
    assert (source.kubeconfig, source.api_server) == (first, "https://first:6443")
    assert (target.kubeconfig, target.api_server) == (second, "https://t:6443")


def test_default_kubeconfig_is_home_kube_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert kubeconfig_paths() == [tmp_path / ".kube" / "config"]
    with pytest.raises(ProviderError, match=r"cannot read kubeconfig .*\.kube/config"):
        ExistingProvider(tmp_path).up(topology())
    (tmp_path / ".kube").mkdir()
    kubeconfig(tmp_path / ".kube" / "config", {"source": "https://s", "target": "https://t"})
    assert [c.api_server for c in ExistingProvider(tmp_path).up(topology())] == [
        "https://s",
        "https://t",
    ]


def test_broken_kubeconfigs(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("contexts: [\n")
    with pytest.raises(ProviderError, match="is not valid YAML"):
        ExistingProvider(tmp_path, env={"KUBECONFIG": str(bad)}).up(topology())
    path = kubeconfig(tmp_path / "config", {"source": "https://s", "target": "https://t"})
    config = yaml.safe_load(path.read_text())
    config["clusters"] = config["clusters"][:1]
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ProviderError, match="names cluster 'c-target', which has no server"):
        ExistingProvider(tmp_path, env={"KUBECONFIG": str(path)}).up(topology())


def test_two_clusters_cannot_share_a_context(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"source": "https://s"})
    provider = ExistingProvider(tmp_path, env={"KUBECONFIG": str(path)})
    with pytest.raises(ProviderError, match="'source' and 'target' both use context 'source'"):
        provider.up(topology(target={"context": "source"}))


def test_registered(tmp_path: Path) -> None:
    assert isinstance(get_provider("existing", tmp_path), ExistingProvider)
