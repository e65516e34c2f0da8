"""The settings an install is rendered from, and their ``linkerd-config`` form.

``Values`` is typed and validated on construction. Its serialised form is a
nested mapping with Linkerd-style keys (``clusterDomain``,
``proxy.defaultInboundPolicy``, ...): that is what ``--set key=value`` addresses
and what the ``linkerd-config`` ConfigMap stores under ``values``, so the proxy
injector and ``isthmus inject --manual`` read back exactly what install used.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mesh.identity.names import DEFAULT_CONTROL_PLANE_NS, check_label, check_subdomain
from mesh.k8s.annotations import DEFAULT_OPAQUE_PORTS, parse_ports

__all__ = [
    "DEFAULT_CLUSTER_NETWORKS",
    "DEFAULT_INBOUND_POLICIES",
    "IMAGE",
    "SET_KEYS",
    "Values",
    "package_version",
]

IMAGE = "isthmus/isthmus"
"""The one image of the mesh: control plane, proxy, proxy-init and CLI (ENTRYPOINT isthmus)."""
DEFAULT_CLUSTER_NETWORKS = "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
"""Linkerd's default ``clusterNetworks``."""
DEFAULT_INBOUND_POLICIES = (
    "all-unauthenticated",
    "all-authenticated",
    "cluster-unauthenticated",
    "cluster-authenticated",
    "deny",
    "audit",
)
"""Values of ``proxy.defaultInboundPolicy`` and ``config.linkerd.io/default-inbound-policy``."""

_DURATION = re.compile(r"(\d+(\.\d+)?(h|m|s|ms))+")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_FAILURE_POLICIES = ("Ignore", "Fail")


def package_version() -> str:
    """The installed isthmus version: the default image tag and proxy version."""
    try:
        return version("isthmus")
    except PackageNotFoundError:
        return "dev"


@dataclass(frozen=True)
class Values:
    """What an install is made of; construction raises ``ValueError`` naming a bad setting."""

    cluster_domain: str = "cluster.local"
    trust_domain: str = ""
    """Identities end with this; empty means the cluster domain."""
    control_plane_ns: str = DEFAULT_CONTROL_PLANE_NS
    cluster_networks: str = DEFAULT_CLUSTER_NETWORKS
    image_name: str = IMAGE
    image_tag: str = dataclasses.field(default_factory=package_version)
    image_pull_policy: str = "IfNotPresent"
    controller_log_level: str = "info"
    controller_replicas: int = 1
    webhook_failure_policy: str = "Ignore"
    issuance_lifetime: str = "24h"
    proxy_log_level: str = "warn,linkerd=info"
    default_inbound_policy: str = "all-unauthenticated"
    opaque_ports: str = str(DEFAULT_OPAQUE_PORTS)
    proxy_uid: int = 2102
    admin_port: int = 4191
    control_port: int = 4190
    inbound_port: int = 4143
    outbound_port: int = 4140
    ignore_inbound_ports: str = ""
    ignore_outbound_ports: str = ""

    def __post_init__(self) -> None:
        check_subdomain("cluster domain", self.cluster_domain)
        if self.trust_domain:
            check_subdomain("trust domain", self.trust_domain)
        check_label("control-plane namespace", self.control_plane_ns)
        _check_networks(self.cluster_networks)
        _check_choice("image.pullPolicy", self.image_pull_policy, _PULL_POLICIES)
        _check_choice("webhookFailurePolicy", self.webhook_failure_policy, _FAILURE_POLICIES)
        _check_choice(
            "proxy.defaultInboundPolicy", self.default_inbound_policy, DEFAULT_INBOUND_POLICIES
        )
        if not _DURATION.fullmatch(self.issuance_lifetime):
            raise ValueError(
                f"identity.issuer.issuanceLifetime {self.issuance_lifetime!r} "
                "is not a duration like 24h"
            )
        for key, text in (("image.name", self.image_name), ("image.version", self.image_tag)):
            if not text or any(c.isspace() for c in text):
                raise ValueError(f"{key} {text!r} must be non-empty without spaces")
        for key, text in (
            ("controllerLogLevel", self.controller_log_level),
            ("proxy.logLevel", self.proxy_log_level),
        ):
            if not text.strip():
                raise ValueError(f"{key} is empty")
        if self.controller_replicas < 1:
            raise ValueError(
                f"controllerReplicas must be at least 1, not {self.controller_replicas}"
            )
        for key, port in (
            ("proxy.ports.admin", self.admin_port),
            ("proxy.ports.control", self.control_port),
            ("proxy.ports.inbound", self.inbound_port),
            ("proxy.ports.outbound", self.outbound_port),
        ):
            if not 0 < port < 65536:
                raise ValueError(f"{key} {port} is not a port number")
        if self.proxy_uid < 1:
            raise ValueError(f"proxy.uid must be a non-root user id, not {self.proxy_uid}")
        for key, text in (
            ("proxy.opaquePorts", self.opaque_ports),
            ("proxyInit.ignoreInboundPorts", self.ignore_inbound_ports),
            ("proxyInit.ignoreOutboundPorts", self.ignore_outbound_ports),
        ):
            _check_ports(key, text)

    @property
    def identity_trust_domain(self) -> str:
        """The trust domain identities end with (the cluster domain unless set)."""
        return self.trust_domain or self.cluster_domain

    @property
    def image(self) -> str:
        """The image reference every container of the mesh runs."""
        return f"{self.image_name}:{self.image_tag}"

    def to_config(self) -> dict[str, Any]:
        """The nested Linkerd-style mapping stored in ``linkerd-config``."""
        tree: dict[str, Any] = {}
        for key, attr in SET_KEYS.items():
            _put(tree, key, getattr(self, attr))
        return tree

    @classmethod
    def from_config(cls, tree: Mapping[str, Any], *, strict: bool = True) -> Values:
        """Read ``to_config``'s form back; unknown keys are errors when ``strict``."""
        flat = dict(_flatten(tree))
        unknown = sorted(set(flat) - set(SET_KEYS))
        if unknown and strict:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(SET_KEYS)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {
            SET_KEYS[k]: _coerce(k, v, fields[SET_KEYS[k]].type)
            for k, v in flat.items()
            if k in SET_KEYS
        }
        return cls(**kwargs)

    def with_settings(self, settings: Iterable[str]) -> Values:
        """Apply ``key=value`` settings (``--set``) in order; raise ``ValueError`` on a bad one."""
        tree = self.to_config()
        for setting in settings:
            key, eq, value = setting.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"--set {setting!r}: expected key=value")
            if key not in SET_KEYS:
                raise ValueError(f"--set {key!r}: unknown setting; known: {', '.join(SET_KEYS)}")
            _put(tree, key, value)
        return Values.from_config(tree)


SET_KEYS: dict[str, str] = {
    "clusterDomain": "cluster_domain",
    "identityTrustDomain": "trust_domain",
    "controlPlaneNamespace": "control_plane_ns",
    "clusterNetworks": "cluster_networks",
    "image.name": "image_name",
    "image.version": "image_tag",
    "image.pullPolicy": "image_pull_policy",
    "controllerLogLevel": "controller_log_level",
    "controllerReplicas": "controller_replicas",
    "webhookFailurePolicy": "webhook_failure_policy",
    "identity.issuer.issuanceLifetime": "issuance_lifetime",
    "proxy.logLevel": "proxy_log_level",
    "proxy.defaultInboundPolicy": "default_inbound_policy",
    "proxy.opaquePorts": "opaque_ports",
    "proxy.uid": "proxy_uid",
    "proxy.ports.admin": "admin_port",
    "proxy.ports.control": "control_port",
    "proxy.ports.inbound": "inbound_port",
    "proxy.ports.outbound": "outbound_port",
    "proxyInit.ignoreInboundPorts": "ignore_inbound_ports",
    "proxyInit.ignoreOutboundPorts": "ignore_outbound_ports",
}
"""``--set`` / ``linkerd-config`` key -> ``Values`` attribute."""


def _put(tree: dict[str, Any], key: str, value: object) -> None:
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, object]]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, path + ".")
        else:
            yield path, value


def _coerce(key: str, value: object, kind: object) -> object:
    if kind in (int, "int"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{key} must be an integer, not {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key} must be an integer, not {value!r}") from None
    if value is None:
        return ""
    if isinstance(value, Mapping | list):
        raise ValueError(f"{key} must be a single value, not {value!r}")
    return str(value)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} {value!r} is not one of {', '.join(choices)}")


def _check_networks(text: str) -> None:
    for item in text.split(","):
        try:
            ipaddress.ip_network(item.strip())
        except ValueError as e:
            raise ValueError(f"clusterNetworks {text!r}: {e}") from None


def _check_ports(key: str, text: str) -> None:
    if not all(parse_ports(item).ranges for item in text.split(",") if item.strip()):
        raise ValueError(f"{key} {text!r} is not a list of port numbers and lo-hi ranges")
