"""Topologies as data: clusters, their domains and CIDRs, and the network between them.

A topology file (``clusters/topologies/*.yaml``) is validated on load; every error
names the file, the field and what is wrong with it. Parsing is pure: no cluster,
network or registry is touched.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NewType

import yaml

from harness.upstream import DEFAULT_VERSION, KNOWN_VERSIONS

ClusterName = NewType("ClusterName", str)
Network = Literal["flat", "hierarchical"]
TOPOLOGY_DIR = Path(__file__).resolve().parent.parent / "clusters" / "topologies"
DEFAULT_UNDERLAY = "172.30.0.0/24"
MAX_NODES = 8

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,14}[a-z0-9])?$")
_TOP_FIELDS = frozenset(["name", "network", "underlay", "clusters", "defaults"])
_CLUSTER_FIELDS = frozenset(
    ["name", "domain", "trust_domain", "pod_cidr", "service_cidr", "version", "nodes", "context"]
)
_DEFAULT_FIELDS = frozenset(["version", "nodes", "trust_domain"])


class TopologyError(ValueError):
    """A topology file is invalid; the message says which file, field and why."""


@dataclass(frozen=True)
class ClusterSpec:
    name: ClusterName
    domain: str
    trust_domain: str
    pod_cidr: ipaddress.IPv4Network
    service_cidr: ipaddress.IPv4Network
    version: str
    nodes: int = 1
    context: str | None = None  # existing provider: the kube context (None: the cluster name)

    @property
    def dns_ip(self) -> ipaddress.IPv4Address:
        """The kube-dns ClusterIP: the tenth address of the service CIDR."""
        return self.service_cidr.network_address + 10


@dataclass(frozen=True)
class Topology:
    name: str
    network: Network
    clusters: tuple[ClusterSpec, ...]
    underlay: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network(DEFAULT_UNDERLAY)
    )
    source: Path | None = None

    def cluster(self, name: str) -> ClusterSpec:
        for c in self.clusters:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.clusters)
        raise KeyError(f"topology {self.name!r} has no cluster {name!r} (it has: {known})")

    def with_version(self, version: str) -> Topology:
        """The same topology with every cluster on ``version``."""
        check_version(version, where="--k8s-version")
        full = resolve_version(version)
        clusters = tuple(dataclasses.replace(c, version=full) for c in self.clusters)
        return dataclasses.replace(self, clusters=clusters)


def resolve_version(version: str) -> str:
    """``1.35`` or ``v1.35`` or ``v1.35.4`` -> the pinned full version ``v1.35.4``."""
    v = version if version.startswith("v") else f"v{version}"
    for known in KNOWN_VERSIONS.values():
        if v in (known.version, known.minor_tag):
            return known.version
    return v


def check_version(version: str, where: str) -> None:
    """Raise TopologyError unless ``version`` names a pinned Kubernetes version."""
    pinned = sorted(k.version for k in KNOWN_VERSIONS.values())
    if resolve_version(version) not in pinned:
        raise TopologyError(
            f"{where}: unknown Kubernetes version {version!r}; pinned versions: {', '.join(pinned)}"
        )


def load(name_or_path: str | Path) -> Topology:
    """Load a topology by name (``two-flat``) or by path, validating it."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TOPOLOGY_DIR / f"{name_or_path}.yaml"
    elif not path.exists() and path.parent == Path("."):
        path = TOPOLOGY_DIR / path.name
    if not path.is_file():
        known = sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))
        raise TopologyError(f"no topology {str(name_or_path)!r}; known: {', '.join(known)}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise TopologyError(f"{path}: not valid YAML: {e}") from e
    return parse(data, where=str(path), source=path)


def parse(data: Any, where: str = "<topology>", source: Path | None = None) -> Topology:
    """Validate raw topology data; raise TopologyError naming the offending field."""
    if not isinstance(data, dict):
        raise TopologyError(f"{where}: expected a mapping at the top level, not {_kind(data)}")
    _check_fields(data, _TOP_FIELDS, f"{where}: unknown top-level fields")
    name = data.get("name") or (source.stem if source else "")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise TopologyError(
            f"{where}: name {name!r} must be a non-empty string of lowercase letters, "
            "digits and '-'"
        )
    network = data.get("network", "flat")
    if network not in ("flat", "hierarchical"):
        raise TopologyError(f"{where}: network must be 'flat' or 'hierarchical', not {network!r}")
    underlay = _cidr(data.get("underlay", DEFAULT_UNDERLAY), f"{where}: underlay")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise TopologyError(f"{where}: defaults must be a mapping, not {_kind(defaults)}")
    _check_fields(
        defaults, _DEFAULT_FIELDS, f"{where}: defaults: fields that cannot have a default"
    )
    raw = data.get("clusters")
    if not isinstance(raw, list) or not raw:
        raise TopologyError(f"{where}: 'clusters' must be a non-empty list")
    clusters = tuple(
        _cluster({**defaults, **c} if isinstance(c, dict) else c, f"{where}: clusters[{i}]")
        for i, c in enumerate(raw)
    )
    _check_unique(clusters, where)
    _check_overlaps(clusters, underlay, where)
    return Topology(name, network, clusters, underlay, source)


def _cluster(c: Any, where: str) -> ClusterSpec:
    if not isinstance(c, dict):
        raise TopologyError(f"{where}: expected a mapping, not {_kind(c)}")
    _check_fields(c, _CLUSTER_FIELDS, f"{where}: unknown fields")
    name = c.get("name")
    if name is None:
        raise TopologyError(f"{where}: name is required")
    if not isinstance(name, str) or not _NAME.match(name):
        raise TopologyError(
            f"{where}: name {name!r} must be 1-16 lowercase letters, digits or '-', "
            "starting with a letter"
        )
    where = f"{where} ({name})"
    domain = _domain(c.get("domain", name), f"{where}: domain")
    trust = _domain(c.get("trust_domain", domain), f"{where}: trust_domain")
    version = _version(c.get("version", DEFAULT_VERSION), f"{where}: version")
    nodes = c.get("nodes", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise TopologyError(
            f"{where}: nodes must be an integer from 1 to {MAX_NODES}, not {nodes!r}"
        )
    context = c.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        raise TopologyError(f"{where}: context must be a non-empty string, not {context!r}")
    for key in ("pod_cidr", "service_cidr"):
        if key not in c:
            raise TopologyError(f"{where}: {key} is required")
    pod = _cidr(c["pod_cidr"], f"{where}: pod_cidr")
    svc = _cidr(c["service_cidr"], f"{where}: service_cidr")
    if pod.prefixlen > 24 - (nodes - 1).bit_length():
        raise TopologyError(
            f"{where}: pod_cidr {pod} is too small for {nodes} node(s) of a /24 each"
        )
    if svc.prefixlen > 24:
        raise TopologyError(f"{where}: service_cidr {svc} must be a /24 or larger")
    return ClusterSpec(ClusterName(name), domain, trust, pod, svc, version, nodes, context)


def _version(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TopologyError(f'{where}: must be a string such as "1.35", not {value!r}')
    try:
        check_version(str(value), where)
    except TopologyError as e:
        if isinstance(value, str):
            raise
        raise TopologyError(f"{e} (quote versions in YAML: 1.30 reads as 1.3)") from None
    return resolve_version(str(value))


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def _check_fields(data: dict[Any, Any], allowed: frozenset[str], message: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise TopologyError(
            f"{message}: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def _domain(d: Any, where: str) -> str:
    if not isinstance(d, str) or not d or len(d) > 253:
        raise TopologyError(f"{where}: {d!r} is not a DNS domain")
    for label in d.split("."):
        if not label:
            raise TopologyError(
                f"{where}: {d!r} has an empty label (leading, trailing or doubled '.')"
            )
        if not _DNS_LABEL.match(label):
            raise TopologyError(
                f"{where}: {d!r} is not a valid DNS domain (bad label {label!r}: "
                "use lowercase letters, digits and '-', at most 63 characters)"
            )
    return d
    return d


def _cidr(value: Any, where: str) -> ipaddress.IPv4Network:
    if not isinstance(value, str) or "/" not in value:
        raise TopologyError(f"{where}: {value!r} is not an IPv4 CIDR such as 10.42.0.0/16")
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as e:
        raise TopologyError(f"{where}: {value!r} is not an IPv4 CIDR ({e})") from e


def _check_unique(clusters: tuple[ClusterSpec, ...], where: str) -> None:
    for kind in ("name", "domain"):
        seen: dict[str, int] = {}
        for i, c in enumerate(clusters):
            value = getattr(c, kind)
            if value in seen:
                raise TopologyError(
                    f"{where}: clusters[{i}]: duplicate cluster {kind} {value!r} "
                    f"(also clusters[{seen[value]}])"
                )
            seen[value] = i


def _check_overlaps(
    clusters: tuple[ClusterSpec, ...], underlay: ipaddress.IPv4Network, where: str
) -> None:
    ranges: list[tuple[str, ipaddress.IPv4Network]] = [("underlay", underlay)]
    for c in clusters:
        ranges += [(f"{c.name}.pod_cidr", c.pod_cidr), (f"{c.name}.service_cidr", c.service_cidr)]
    for i, (a_name, a) in enumerate(ranges):
        for b_name, b in ranges[i + 1 :]:
            if a.overlaps(b):
                raise TopologyError(f"{where}: {a_name} {a} overlaps {b_name} {b}")
