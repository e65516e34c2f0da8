"""The settings the multicluster manifests are rendered from, and their ``--set`` keys.

``McValues`` is typed and validated on construction, like the control plane's
``Values``; ``with_settings`` applies ``--set key=value`` in order. Keys are
Linkerd's multicluster chart's where it has one (``gateway.enabled``,
``gateway.probe.seconds``, ``identityTrustDomain``, ``linkerdVersion`` as an
alias of ``image.version``). The control-plane facts (trust domain, its
namespace, cluster domain) come from the cluster's ``linkerd-config`` unless the
command is told to ignore the cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from mesh.identity.names import DEFAULT_CONTROL_PLANE_NS, check_label, check_subdomain
from mesh.install.values import IMAGE, package_version

__all__ = ["SERVICE_TYPES", "SET_KEYS", "McValues"]

SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class McValues:
    """What the multicluster manifests are made of; ``ValueError`` names a bad setting."""

    cluster_domain: str = "cluster.local"
    trust_domain: str = ""
    """Identities end with this; empty means the cluster domain."""
    control_plane_ns: str = DEFAULT_CONTROL_PLANE_NS
    image_name: str = IMAGE
    image_tag: str = dataclasses.field(default_factory=package_version)
    image_pull_policy: str = "IfNotPresent"
    log_level: str = "info"
    gateway_enabled: bool = True
    gateway_replicas: int = 1
    gateway_service_type: str = "LoadBalancer"
    gateway_port: int = 4143
    probe_port: int = 4191
    probe_path: str = "/ready"
    probe_seconds: int = 3

    def __post_init__(self) -> None:
        check_subdomain("cluster domain", self.cluster_domain)
        if self.trust_domain:
            check_subdomain("trust domain", self.trust_domain)
        check_label("control-plane namespace", self.control_plane_ns)
        for key, text in (("image.name", self.image_name), ("image.version", self.image_tag)):
            if not text or any(c.isspace() for c in text):
                raise ValueError(f"{key} {text!r} must be non-empty without spaces")
        _choice("image.pullPolicy", self.image_pull_policy, _PULL_POLICIES)
        _choice("logLevel", self.log_level, _LOG_LEVELS)
        _choice("gateway.serviceType", self.gateway_service_type, SERVICE_TYPES)
        for key, port in (
            ("gateway.port", self.gateway_port),
            ("gateway.probe.port", self.probe_port),
        ):
            if not 0 < port < 65536:
                raise ValueError(f"{key} {port} is not a port number")
        if self.gateway_port == self.probe_port:
            raise ValueError("gateway.port and gateway.probe.port must differ")
        if self.gateway_replicas < 1:
            raise ValueError(f"gateway.replicas must be at least 1, not {self.gateway_replicas}")
        if self.probe_seconds < 1:
            raise ValueError(f"gateway.probe.seconds must be at least 1, not {self.probe_seconds}")
        if not self.probe_path.startswith("/"):
            raise ValueError(f"gateway.probe.path {self.probe_path!r} must start with /")

    @property
    def identity_trust_domain(self) -> str:
        return self.trust_domain or self.cluster_domain

    @property
    def image(self) -> str:
        return f"{self.image_name}:{self.image_tag}"

    def identity(self, service_account: str, namespace: str) -> str:
        """The TLS identity of ``service_account`` in ``namespace`` of this cluster's mesh."""
        return (
            f"{service_account}.{namespace}.serviceaccount.identity."
            f"{self.control_plane_ns}.{self.identity_trust_domain}"
        )

    def with_settings(self, settings: Iterable[str]) -> McValues:
        """Apply ``key=value`` settings in order; ``ValueError`` on an unknown key or bad value."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, object] = {}
        for setting in settings:
            key, eq, value = setting.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"--set {setting!r}: expected key=value")
            if key not in SET_KEYS:
                raise ValueError(f"--set {key!r}: unknown setting; known: {', '.join(SET_KEYS)}")
            attr = SET_KEYS[key]
            changes[attr] = _coerce(key, value.strip(), fields[attr].type)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


SET_KEYS: dict[str, str] = {
    "clusterDomain": "cluster_domain",
    "identityTrustDomain": "trust_domain",
    "linkerdNamespace": "control_plane_ns",
    "image.name": "image_name",
    "image.version": "image_tag",
    "linkerdVersion": "image_tag",
    "image.pullPolicy": "image_pull_policy",
    "logLevel": "log_level",
    "gateway.enabled": "gateway_enabled",
    "gateway.replicas": "gateway_replicas",
    "gateway.serviceType": "gateway_service_type",
    "gateway.port": "gateway_port",
    "gateway.probe.port": "probe_port",
    "gateway.probe.path": "probe_path",
    "gateway.probe.seconds": "probe_seconds",
}
"""``--set`` key -> ``McValues`` attribute."""


def _coerce(key: str, value: str, kind: object) -> object:
    if kind in (bool, "bool"):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{key} must be true or false, not {value!r}")
    if kind in (int, "int"):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key} must be an integer, not {value!r}") from None
    return value


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} {value!r} is not one of {', '.join(choices)}")
