"""The proxy's settings from its environment: the ``LINKERD2_PROXY_*`` contract.

``load`` reads a mapping (``os.environ``) and returns a typed ``EnvConfig``, or
raises ``EnvError`` listing every problem, each naming its variable. Pure: no
file is read (the token file is read by the identity client, at each renewal).

The injector (``mesh.inject.proxyenv``) writes these variables. Rules:
- Addresses are ``host:port``; a host may be an IP literal, ``[v6]``, or a DNS
  name, absolute with a trailing dot (``linkerd-dst-headless.linkerd.svc.
  cluster.local.:8086``); the dot is kept, so the resolver skips its search list.
- Lists are comma-separated; ports may be ranges ``lo-hi``.
- Identity is required unless ``LINKERD2_PROXY_IDENTITY_DISABLED`` is set; then
  the proxy runs in plaintext (``tls="disabled"``), control-plane calls included.
  With identity, each control-plane address needs its ``…_SVC_NAME``: the
  identity the server's certificate must name (SEC-3). Without a destination
  address every target is forwarded to its original destination; without a
  policy address every port gets the default inbound policy.
- ``LINKERD2_PROXY_LOG`` follows Linkerd's ``level,target=level`` form;
  ``log_levels`` maps it onto Python loggers (``linkerd*`` targets are this
  package's loggers).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TypeVar

from cryptography import x509

from mesh.identity.names import check_subdomain
from mesh.k8s.annotations import PortRanges
from mesh.proxy.config import ProxyConfig
from mesh.proxy.discovery import Address
from mesh.proxy.gateway import GatewaySettings
from mesh.proxy.policy import DEFAULT_CLUSTER_NETWORKS, Network

__all__ = [
    "DEFAULT_POLICIES",
    "DestinationSettings",
    "EnvConfig",
    "EnvError",
    "IdentitySettings",
    "InboundSettings",
    "PolicySettings",
    "ServiceAddr",
    "load",
    "log_levels",
    "parse_duration",
    "parse_port_ranges",
    "parse_service_addr",
]

DEFAULT_POLICIES = (
    "all-unauthenticated",
    "all-authenticated",
    "cluster-unauthenticated",
    "cluster-authenticated",
    "deny",
    "audit",
)
"""Values of ``LINKERD2_PROXY_INBOUND_DEFAULT_POLICY``."""

DEFAULT_LOG = "warn,linkerd=info"
DEFAULT_SHUTDOWN_GRACE = 2.0
"""Seconds open connections get to finish after SIGTERM (``…_SHUTDOWN_GRACE_PERIOD``)."""
INBOUND_LISTEN = Address("0.0.0.0", 4143)
OUTBOUND_LISTEN = Address("127.0.0.1", 4140)
ADMIN_LISTEN = Address("0.0.0.0", 4191)

_T = TypeVar("_T")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}
_PROXY_LOGGER = "mesh.proxy"


class EnvError(ValueError):
    """The environment cannot configure a proxy; ``problems`` name each variable and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ServiceAddr:
    """A control-plane service address: ``host`` as given (an absolute name keeps its dot)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def grpc_target(self) -> str:
        """The gRPC channel target (DNS resolution, every address of a headless service)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return f"dns:///{self}"
        return str(self)


@dataclass(frozen=True)
class IdentitySettings:
    """How the proxy gets its certificate."""

    local_name: str
    trust_anchors_pem: bytes
    token_file: PurePosixPath
    svc: ServiceAddr
    svc_name: str = ""
    """The identity service's own identity: its TLS certificate must name it (SEC-3)."""
    dir: PurePosixPath | None = None
    """Where the key and certificate may be written (an in-memory volume)."""


@dataclass(frozen=True)
class DestinationSettings:
    """Where discovery comes from and which targets it is asked about."""

    svc: ServiceAddr
    svc_name: str = ""
    context: str = ""
    """Sent verbatim as each request's ``context_token`` (JSON)."""
    profile_suffixes: tuple[str, ...] = ("svc.cluster.local",)
    """Names under these suffixes are resolved (without their trailing dots; ``""``: all)."""
    profile_networks: tuple[Network, ...] = DEFAULT_CLUSTER_NETWORKS
    """IPs in these networks are resolved; others are forwarded as addressed."""

    def discoverable_name(self, host: str) -> bool:
        """Whether the name ``host`` is under one of the profile suffixes."""
        name = host.rstrip(".").lower()
        return any(not s or name == s or name.endswith("." + s) for s in self.profile_suffixes)


@dataclass(frozen=True)
class PolicySettings:
    """Where inbound policy comes from and for which workload."""

    svc: ServiceAddr
    workload: str
    """``<namespace>:<pod>``"""
    svc_name: str = ""


@dataclass(frozen=True)
class InboundSettings:
    """The pod's inbound facts and its default policy."""

    default_policy: str = "all-unauthenticated"
    ports: tuple[int, ...] = ()
    """The application's declared ports (policy is watched for them from the start)."""
    opaque_ports: PortRanges = field(default_factory=PortRanges)
    cluster_networks: tuple[Network, ...] = DEFAULT_CLUSTER_NETWORKS
    ips: tuple[str, ...] = ()
    gateway_suffixes: tuple[str, ...] = ()
    """Gateway mode's service suffixes (``LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES``)."""


@dataclass(frozen=True)
class EnvConfig:
    """Everything the proxy process is told by its environment."""

    inbound_listen: Address = INBOUND_LISTEN
    outbound_listen: Address = OUTBOUND_LISTEN
    admin_listen: Address = ADMIN_LISTEN
    control_listen: Address | None = None
    """The tap port (Linkerd's control port, 4190); served over mTLS to ``tap_identities``."""
    tap_identities: tuple[str, ...] = ()
    """``LINKERD2_PROXY_TAP_SVC_NAME``: who may tap; none: tap is not served (SEC-2)."""
    log: str = DEFAULT_LOG
    log_format: str = "plain"
    inbound: InboundSettings = field(default_factory=InboundSettings)
    identity: IdentitySettings | None = None
    """``None``: identity disabled, plaintext everywhere."""
    destination: DestinationSettings | None = None
    policy: PolicySettings | None = None
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE

    def proxy_config(self) -> ProxyConfig:
        """The listener settings for ``Proxy``."""
        return ProxyConfig(
            inbound_host=self.inbound_listen.host,
            inbound_port=self.inbound_listen.port,
            outbound_host=self.outbound_listen.host,
            outbound_port=self.outbound_listen.port,
            admin_host=self.admin_listen.host,
            admin_port=self.admin_listen.port,
            tap_host=self.control_listen.host if self.control_listen else "0.0.0.0",
            tap_port=self.control_listen.port if self.control_listen else 4190,
            tap_identities=self.tap_identities if self.identity is not None else (),
            cluster_networks=self.inbound.cluster_networks,
            gateway_suffixes=self.inbound.gateway_suffixes,
        )


def parse_duration(text: str) -> float:
    """Seconds from ``1h30m``, ``2s``, ``500ms``; ``ValueError`` if malformed."""
    text = text.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"not a duration like 2s, 500ms or 1m30s: {text!r}")
    return sum(float(n) * _SECONDS[unit] for n, unit in _DURATION.findall(text))


def log_levels(spec: str) -> tuple[int, dict[str, int]]:
    """The root level and per-logger levels of a ``LINKERD2_PROXY_LOG`` value.

    ``warn,linkerd=info`` gives WARNING for everything and INFO for this
    package's loggers; ``mesh.proxy.outbound=debug`` names a logger directly;
    other targets (``hyper``, ``h2``, …) have no counterpart and are ignored.
    Raises ``ValueError`` for an unknown level.
    """
    root = logging.WARNING
    loggers: dict[str, int] = {}
    for raw in spec.split(","):
        directive = raw.strip()
        if not directive:
            continue
        target, eq, level_text = directive.rpartition("=")
        if not eq:
            target, level_text = "", directive
        level = _LEVELS.get(level_text.strip().lower())
        if level is None:
            raise ValueError(f"unknown log level {level_text!r} in {directive!r}")
        target = target.strip().replace("::", ".")
        if not target:
            root = level
        elif target.startswith("linkerd"):
            loggers[_PROXY_LOGGER] = level
        elif target == "mesh" or target.startswith("mesh."):
            loggers[target] = level
    return root, loggers


def _address(text: str) -> Address:
    address = Address.parse(text.strip())
    if not address.is_ip:
        raise ValueError(f"listen address must be an IP and port, got {text!r}")
    return address


def parse_service_addr(text: str) -> ServiceAddr:
    """A control-plane address ``host:port``; ``ValueError`` if it is not one."""
    text = text.strip()
    address = Address.parse(text)
    if not address.is_ip:
        check_subdomain("host", address.host.rstrip(".").lower())
    return ServiceAddr(address.host, address.port)


def parse_port_ranges(text: str) -> PortRanges:
    """Ports and ``lo-hi`` ranges, comma-separated; ``ValueError`` naming a bad item."""
    ranges: list[tuple[int, int]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        lo_text, dash, hi_text = item.partition("-")
        bounds = (lo_text, hi_text) if dash else (lo_text, lo_text)
        if not all(b.strip().isdigit() and 0 < int(b) < 65536 for b in bounds):
            raise ValueError(f"{item!r} is not a port (1-65535) or a range lo-hi")
        lo, hi = int(bounds[0]), int(bounds[1])
        if lo > hi:
            raise ValueError(f"range {item!r} ends before it starts")
        ranges.append((lo, hi))
    return PortRanges(tuple(sorted(set(ranges))))


def _port_list(text: str) -> tuple[int, ...]:
    ranges = parse_port_ranges(text)
    if any(hi - lo > 1024 for lo, hi in ranges.ranges):
        raise ValueError("a range of more than 1024 declared ports")
    return tuple(p for lo, hi in ranges.ranges for p in range(lo, hi + 1))


def _networks(text: str) -> tuple[Network, ...]:
    return tuple(Network.parse(c.strip()) for c in text.split(",") if c.strip())


def _ips(text: str) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_address(ip.strip())) for ip in text.split(",") if ip.strip())


def _json_object(text: str) -> dict[str, object]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _workload(text: str) -> str:
    value = _json_object(text)
    ns, pod = value.get("ns"), value.get("pod")
    if not isinstance(ns, str) or not ns or not isinstance(pod, str) or not pod:
        raise ValueError('expected {"ns": "<namespace>", "pod": "<pod>"}')
    return f"{ns}:{pod}"


def _anchors(text: str) -> bytes:
    data = text.strip().encode()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("no certificates (expected PEM: -----BEGIN CERTIFICATE-----)")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ValueError(f"not a PEM bundle of certificates: {e}") from None
    if not certs:
        raise ValueError("no certificates")
    return data + b"\n"


def _local_name(text: str) -> str:
    name = text.strip()
    check_subdomain("identity", name)
    return name


def _identities(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        check_subdomain("identity", name)
    return names


def _path(text: str) -> PurePosixPath:
    if not text.strip().startswith("/"):
        raise ValueError(f"expected an absolute path, got {text!r}")
    return PurePosixPath(text.strip())


def _policy(text: str) -> str:
    value = text.strip()
    if value not in DEFAULT_POLICIES:
        raise ValueError(f"{value!r} is not one of {', '.join(DEFAULT_POLICIES)}")
    return value


def _suffixes(text: str) -> tuple[str, ...]:
    return tuple(s.strip().strip(".").lower() for s in text.split(",") if s.strip())


def _gateway_suffixes(text: str) -> tuple[str, ...]:
    return GatewaySettings.parse(text).suffixes


class _Reader:
    """Reads variables, collecting one problem per bad variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def has(self, name: str) -> bool:
        return bool(self.env.get(name, "").strip())

    def get(self, name: str, parse: Callable[[str], _T], default: _T) -> _T:
        text = self.env.get(name, "")
        if not text.strip():
            return default
        try:
            return parse(text)
        except ValueError as e:
            self.problems.append(f"{name}: {e}")
            return default

    def need(self, name: str, parse: Callable[[str], _T], why: str) -> _T | None:
        if not self.has(name):
            self.problems.append(f"{name}: required {why}")
            return None
        result: _T | None = self.get(name, parse, None)
        return result


def _identity(r: _Reader) -> IdentitySettings | None:
    if r.has("LINKERD2_PROXY_IDENTITY_DISABLED"):
        return None
    why = "(or set LINKERD2_PROXY_IDENTITY_DISABLED)"
    name = r.need("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", _local_name, why)
    anchors = r.need("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", _anchors, why)
    token = r.need("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", _path, why)
    svc = r.need("LINKERD2_PROXY_IDENTITY_SVC_ADDR", parse_service_addr, why)
    directory = r.get("LINKERD2_PROXY_IDENTITY_DIR", _path, None)
    svc_name = r.need("LINKERD2_PROXY_IDENTITY_SVC_NAME", _local_name, why)
    if name is None or anchors is None or token is None or svc is None or svc_name is None:
        return None
    return IdentitySettings(name, anchors, token, svc, svc_name, directory)


def _destination(r: _Reader, cluster_networks: tuple[Network, ...]) -> DestinationSettings | None:
    svc = r.get("LINKERD2_PROXY_DESTINATION_SVC_ADDR", parse_service_addr, None)
    context = r.env.get("LINKERD2_PROXY_DESTINATION_CONTEXT", "").strip()
    if context:
        r.get("LINKERD2_PROXY_DESTINATION_CONTEXT", _json_object, None)
    default_suffixes: tuple[str, ...] = ("svc.cluster.local",)
    suffixes = r.get("LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", _suffixes, default_suffixes)
    networks = r.get("LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", _networks, cluster_networks)
    if svc is None:
        return None
    return DestinationSettings(
        svc,
        r.env.get("LINKERD2_PROXY_DESTINATION_SVC_NAME", "").strip(),
        context,
        suffixes,
        networks,
    )


def _policy_settings(r: _Reader) -> PolicySettings | None:
    svc = r.get("LINKERD2_PROXY_POLICY_SVC_ADDR", parse_service_addr, None)
    if svc is None:
        return None
    workload = r.need("LINKERD2_PROXY_POLICY_WORKLOAD", _workload, "with a policy address")
    if workload is None:
        return None
    return PolicySettings(svc, workload, r.env.get("LINKERD2_PROXY_POLICY_SVC_NAME", "").strip())


def load(env: Mapping[str, str]) -> EnvConfig:
    """The proxy's settings from ``env``; ``EnvError`` naming every bad variable."""
    r = _Reader(env)
    defaults = EnvConfig()
    log = r.env.get("LINKERD2_PROXY_LOG", "").strip() or DEFAULT_LOG
    try:
        log_levels(log)
    except ValueError as e:
        r.problems.append(f"LINKERD2_PROXY_LOG: {e}")
    log_format = r.env.get("LINKERD2_PROXY_LOG_FORMAT", "").strip().lower() or "plain"
    if log_format not in ("plain", "json"):
        r.problems.append(f"LINKERD2_PROXY_LOG_FORMAT: {log_format!r} is not plain or json")
    cluster_networks = r.get(
        "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", _networks, DEFAULT_CLUSTER_NETWORKS
    )
    inbound = InboundSettings(
        default_policy=r.get(
            "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", _policy, "all-unauthenticated"
        ),
        ports=r.get("LINKERD2_PROXY_INBOUND_PORTS", _port_list, ()),
        opaque_ports=r.get(
            "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            parse_port_ranges,
            PortRanges(),
        ),
        cluster_networks=cluster_networks,
        ips=r.get("LINKERD2_PROXY_INBOUND_IPS", _ips, ()),
        gateway_suffixes=r.get("LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES", _gateway_suffixes, ()),
    )
    config = EnvConfig(
        inbound_listen=r.get(
            "LINKERD2_PROXY_INBOUND_LISTEN_ADDR", _address, defaults.inbound_listen
        ),
        outbound_listen=r.get(
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", _address, defaults.outbound_listen
        ),
        admin_listen=r.get("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", _address, defaults.admin_listen),
        control_listen=r.get("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", _address, None),
        tap_identities=r.get("LINKERD2_PROXY_TAP_SVC_NAME", _identities, ()),
        log=log,
        log_format=log_format,
        inbound=inbound,
        identity=_identity(r),
        destination=_destination(r, cluster_networks),
        policy=_policy_settings(r),
        shutdown_grace=r.get(
            "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", parse_duration, DEFAULT_SHUTDOWN_GRACE
        ),
    )
    if config.identity is not None:
        # SEC-3: with identity, every control-plane server is checked against a name.
        for service, settings in (("DESTINATION", config.destination), ("POLICY", config.policy)):
            if settings is not None and not settings.svc_name:
                r.problems.append(
                    f"LINKERD2_PROXY_{service}_SVC_NAME: required with "
                    f"LINKERD2_PROXY_{service}_SVC_ADDR (the identity its server must present)"
                )
    if r.problems:
        raise EnvError(r.problems)
    return config
