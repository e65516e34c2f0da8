"""Topology files: the shipped ones load, and every invalid one fails with a clear message."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from harness.topology import TOPOLOGY_DIR, TopologyError, load, parse, resolve_version
from harness.upstream import DEFAULT_VERSION

BASE: dict[str, Any] = {
    "name": "t",
    "network": "flat",
    "clusters": [
        {"name": "source", "pod_cidr": "10.42.0.0/16", "service_cidr": "10.96.0.0/16"},
        {"name": "target", "pod_cidr": "10.23.0.0/16", "service_cidr": "10.97.0.0/16"},
    ],
}


def variant(**changes: Any) -> dict[str, Any]:
    """BASE with top-level keys replaced; ``c0``/``c1`` keys patch a cluster (None: drop)."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key[:1] == "c" and key[1:2].isdigit():
            cluster = data["clusters"][int(key[1])]
            field = key[3:]
            if value is None:
                del cluster[field]
            else:
                cluster[field] = value
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("name", "network", "clusters"),
    [
        ("two-flat", "flat", {"source": "10.42.0.0/16", "target": "10.23.0.0/16"}),
        ("two-hierarchical", "hierarchical", {"source": "10.42.0.0/16", "target": "10.23.0.0/16"}),
        (
            "three-flat",
            "flat",
            {"source": "10.42.0.0/16", "target": "10.23.0.0/16", "west": "10.52.0.0/16"},
        ),
    ],
)
def test_shipped_topologies_load(name: str, network: str, clusters: dict[str, str]) -> None:
    topo = load(name)
    assert topo.name == name
    assert topo.network == network
    assert topo.source == TOPOLOGY_DIR / f"{name}.yaml"
    assert {c.name: str(c.pod_cidr) for c in topo.clusters} == clusters
    for c in topo.clusters:
        assert c.domain == c.trust_domain == c.name
        assert c.version == DEFAULT_VERSION
        assert c.nodes == 1
        assert c.context is None


def test_load_by_path_and_unknown_name(tmp_path: Path) -> None:
    assert load(TOPOLOGY_DIR / "two-flat.yaml").name == "two-flat"
    with pytest.raises(TopologyError, match=r"no topology 'nope'; known: .*two-flat"):
        load("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters: [\n")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load(bad)


def test_defaults_and_derived_fields() -> None:
    data = variant(defaults={"version": "1.34", "nodes": 2}, c1_trust_domain="example.org")
    data["clusters"][1]["context"] = "k3d-target"
    topo = parse(data)
    source, target = topo.clusters
    assert (source.version, source.nodes) == ("v1.34.4", 2)
    assert str(source.dns_ip) == "10.96.0.10"
    assert (target.domain, target.trust_domain, target.context) == (
        "target",
        "example.org",
        "k3d-target",
    )
    assert topo.cluster("target") is target
    with pytest.raises(KeyError, match="no cluster 'west'"):
        topo.cluster("west")


@pytest.mark.parametrize(
    ("given", "full"),
    [("1.34", "v1.34.4"), ("v1.34", "v1.34.4"), ("1.35", "v1.35.4"), ("v1.35.4", "v1.35.4")],
)
def test_resolve_version(given: str, full: str) -> None:
    assert resolve_version(given) == full


def test_with_version() -> None:
    topo = parse(BASE)
    older = topo.with_version("1.34")
    assert [c.version for c in older.clusters] == ["v1.34.4", "v1.34.4"]
    assert [c.version for c in topo.clusters] == [DEFAULT_VERSION] * 2
    assert (older.name, older.network, older.underlay) == (topo.name, topo.network, topo.underlay)
    with pytest.raises(TopologyError, match=r"--k8s-version: unknown Kubernetes version '1\.20'"):
        topo.with_version("1.20")


INVALID: list[tuple[str, Any, list[str]]] = [
    ("not a mapping", ["a", "list"], ["expected a mapping at the top level", "a list"]),
    ("empty file", None, ["expected a mapping at the top level", "nothing"]),
    ("unknown top-level field", variant(netwrok="flat"), ["unknown top-level fields: netwrok"]),
    ("unknown cluster field", variant(c0_podcidr="10.1.0.0/16"), ["clusters[0]", "podcidr"]),
    ("bad network", variant(network="mesh"), ["network must be 'flat' or 'hierarchical'"]),
    ("no clusters", variant(clusters=[]), ["'clusters' must be a non-empty list"]),
    ("cluster not a mapping", variant(clusters=["source"]), ["clusters[0]", "expected a mapping"]),
    ("bad defaults field", variant(defaults={"pod_cidr": "10.1.0.0/16"}), ["defaults", "pod_cidr"]),
    (
        "missing pod_cidr",
        variant(c1_pod_cidr=None),
        ["clusters[1] (target)", "pod_cidr is required"],
    ),
    ("missing name", variant(c0_name=None), ["clusters[0]: name is required"]),
    ("bad cluster name", variant(c0_name="Source"), ["name 'Source'", "lowercase"]),
    (
        "pod overlaps pod",
        variant(c1_pod_cidr="10.42.128.0/17"),
        ["source.pod_cidr 10.42.0.0/16 overlaps target.pod_cidr 10.42.128.0/17"],
    ),
    (
        "pod overlaps service",
        variant(c1_pod_cidr="10.96.0.0/16"),
        ["source.service_cidr 10.96.0.0/16 overlaps target.pod_cidr 10.96.0.0/16"],
    ),
    (
        "own pod overlaps own service",
        variant(c0_service_cidr="10.42.0.0/24"),
        ["source.pod_cidr 10.42.0.0/16 overlaps source.service_cidr 10.42.0.0/24"],
    ),
    (
        "pod overlaps underlay",
        variant(c0_pod_cidr="172.30.0.0/16"),
        ["underlay 172.30.0.0/24 overlaps source.pod_cidr 172.30.0.0/16"],
    ),
    (
        "explicit underlay overlaps service",
        variant(underlay="10.97.1.0/24"),
        ["underlay 10.97.1.0/24 overlaps target.service_cidr 10.97.0.0/16"],
    ),
    (
        "duplicate name",
        variant(c1_name="source"),
        ["duplicate cluster name 'source'", "clusters[0]"],
    ),
    (
        "duplicate domain",
        variant(c0_domain="shared", c1_domain="shared"),
        ["clusters[1]: duplicate cluster domain 'shared' (also clusters[0])"],
    ),
    ("uppercase domain", variant(c0_domain="Source"), ["domain", "bad label 'Source'"]),
    ("underscore domain", variant(c0_domain="my_domain"), ["domain", "bad label 'my_domain'"]),
    ("empty label", variant(c0_domain="a..b"), ["domain: 'a..b' has an empty label"]),
    ("trailing dot", variant(c0_domain="source."), ["domain: 'source.' has an empty label"]),
    ("empty domain", variant(c0_domain=""), ["domain: '' is not a DNS domain"]),
    ("bad trust domain", variant(c0_trust_domain="Example.org"), ["trust_domain", "'Example'"]),
    (
        "unknown version",
        variant(c0_version="1.20"),
        ["clusters[0] (source): version", "unknown Kubernetes version '1.20'", "v1.35.4"],
    ),
    ("unquoted version", variant(c0_version=1.3), ["'1.3'", "quote versions"]),
    ("bad CIDR", variant(c0_pod_cidr="10.42.0.0/33"), ["pod_cidr: '10.42.0.0/33' is not an IPv4"]),
    ("CIDR with host bits", variant(c0_pod_cidr="10.42.0.1/16"), ["pod_cidr", "host bits set"]),
    ("CIDR without prefix", variant(c0_service_cidr="10.96.0.0"), ["service_cidr: '10.96.0.0'"]),
    ("CIDR not a string", variant(c0_pod_cidr=42), ["pod_cidr: 42 is not an IPv4 CIDR"]),
    ("bad underlay", variant(underlay="nope"), ["underlay: 'nope' is not an IPv4 CIDR"]),
    ("too many nodes", variant(c0_nodes=9), ["nodes must be an integer from 1 to 8, not 9"]),
    ("zero nodes", variant(c0_nodes=0), ["nodes must be an integer from 1 to 8, not 0"]),
    ("boolean nodes", variant(c0_nodes=True), ["nodes must be an integer", "True"]),
    (
        "pod CIDR too small for nodes",
        variant(c0_pod_cidr="10.42.0.0/23", c0_nodes=3),
        ["pod_cidr 10.42.0.0/23 is too small for 3 node(s)"],
    ),
    ("small service CIDR", variant(c0_service_cidr="10.96.0.0/25"), ["must be a /24 or larger"]),
    ("bad context", variant(c0_context=""), ["context must be a non-empty string"]),
    ("bad topology name", variant(name="Two Flat"), ["name 'Two Flat'"]),
]


@pytest.mark.parametrize(("case", "data", "fragments"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_topologies(case: str, data: Any, fragments: list[str]) -> None:
    with pytest.raises(TopologyError) as err:
        parse(data, where="topo.yaml")
    message = str(err.value)
    assert message.startswith("topo.yaml: ")
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("clusters:\n  - name: a\n    pod_cidr: 10.42.0.0/16\n")
    with pytest.raises(TopologyError, match=rf"^{path}: clusters\[0\] \(a\): service_cidr is"):
        load(path)
