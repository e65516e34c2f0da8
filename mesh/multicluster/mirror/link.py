"""The Link a mirror controller serves, read strictly from its ``multicluster.linkerd.io`` object.

Rules: ``parse_link`` accepts v1alpha3 Links as ``multicluster link`` writes them (and
the older versions' subset); anything malformed raises ``LinkError`` naming the field,
never a half-read Link. An empty or absent selector selects nothing (CONF-16).
Durations are Go's (``3s``, ``1m30s``, ``500ms``); ports and thresholds may be numbers
or numeric strings. Exclusions match a key exactly or, written ``prefix/*``, any key
under ``prefix/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh.multicluster import labels

__all__ = [
    "Link",
    "LinkError",
    "ProbeSpec",
    "Requirement",
    "Selector",
    "excluded",
    "parse_duration",
    "parse_link",
    "parse_selector",
]


class LinkError(ValueError):
    """A Link the controller cannot act on; the message names the field."""


_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, obj_labels: Mapping[str, str]) -> bool:
        present = self.key in obj_labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and obj_labels[self.key] in self.values
        return not present or obj_labels[self.key] not in self.values  # NotIn


@dataclass(frozen=True)
class Selector:
    """A label selector; the empty one matches nothing (a Link must say what it exports)."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.expressions

    def matches(self, obj_labels: Mapping[str, str]) -> bool:
        if self.empty:
            return False
        if any(obj_labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(r.matches(obj_labels) for r in self.expressions)


EMPTY_SELECTOR = Selector()


def _str_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise LinkError(f"{where} must map strings to strings, got {value!r}")
    return dict(value)


def parse_selector(value: object, where: str) -> Selector:
    """A ``metav1.LabelSelector`` from its JSON form; absent or null is the empty selector."""
    if value is None:
        return EMPTY_SELECTOR
    if not isinstance(value, Mapping):
        raise LinkError(f"{where} must be a label selector object, got {value!r}")
    unknown = set(value) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise LinkError(f"{where} has unknown fields {sorted(unknown)}")
    match_labels = _str_map(value.get("matchLabels"), f"{where}.matchLabels")
    raw_exprs = value.get("matchExpressions") or []
    if not isinstance(raw_exprs, list):
        raise LinkError(f"{where}.matchExpressions must be a list")
    exprs: list[Requirement] = []
    for i, raw in enumerate(raw_exprs):
        at = f"{where}.matchExpressions[{i}]"
        if not isinstance(raw, Mapping):
            raise LinkError(f"{at} must be an object")
        key, op, values = raw.get("key"), raw.get("operator"), raw.get("values") or []
        if not isinstance(key, str) or not key:
            raise LinkError(f"{at}.key must be a non-empty string")
        if op not in _OPERATORS:
            raise LinkError(f"{at}.operator {op!r} is not one of {sorted(_OPERATORS)}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise LinkError(f"{at}.values must be a list of strings")
        if op in ("In", "NotIn") and not values:
            raise LinkError(f"{at}: operator {op} needs values")
        if op in ("Exists", "DoesNotExist") and values:
            raise LinkError(f"{at}: operator {op} takes no values")
        exprs.append(Requirement(key, str(op), frozenset(values)))
    return Selector(match_labels, tuple(exprs))


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: object, where: str) -> float:
    """Seconds in a Go duration (``3s``, ``1m30s``) or a bare number of seconds; > 0."""
    if isinstance(value, bool) or value is None:
        raise LinkError(f"{where} must be a duration such as '3s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise LinkError(f"{where} {value!r} is not a duration such as '3s' or '1m30s'")
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise LinkError(f"{where} must be a duration such as '3s', got {value!r}")
    if seconds <= 0:
        raise LinkError(f"{where} must be positive, got {value!r}")
    return seconds


def _int(value: object, where: str, *, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise LinkError(f"{where} must be a number, got {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not low <= value <= high:
        raise LinkError(f"{where} must be a number in {low}..{high}, got {value!r}")
    return value


@dataclass(frozen=True)
class ProbeSpec:
    """How to probe the target's gateway: ``GET http://<gateway>:<port><path>``."""

    path: str = labels.PROBE_PATH
    port: int = labels.PROBE_PORT
    period: float = 3.0
    timeout: float = 30.0
    failure_threshold: int = 3


def _probe_spec(value: object) -> ProbeSpec:
    if value is None:
        return ProbeSpec()
    if not isinstance(value, Mapping):
        raise LinkError("spec.probeSpec must be an object")
    default = ProbeSpec()
    path = value.get("path", default.path) or default.path
    if not isinstance(path, str) or not path.startswith("/"):
        raise LinkError(f"spec.probeSpec.path must start with '/', got {path!r}")
    port = value.get("port")
    threshold = value.get("failureThreshold")
    period = value.get("period")
    timeout = value.get("timeout")
    return ProbeSpec(
        path=path,
        port=default.port
        if port in (None, "")
        else _int(port, "spec.probeSpec.port", low=1, high=65535),
        period=default.period
        if period in (None, "")
        else parse_duration(period, "spec.probeSpec.period"),
        timeout=(
            default.timeout
            if timeout in (None, "")
            else parse_duration(timeout, "spec.probeSpec.timeout")
        ),
        failure_threshold=(
            default.failure_threshold
            if threshold in (None, "")
            else _int(threshold, "spec.probeSpec.failureThreshold", low=1, high=1000)
        ),
    )


def _string_list(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise LinkError(f"{where} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def excluded(key: str, patterns: Sequence[str]) -> bool:
    """Whether ``key`` is one of ``patterns``, or under ``prefix/`` for a ``prefix/*`` (CONF-6)."""
    for pattern in patterns:
        if pattern.endswith("/*"):
            if key.startswith(pattern[:-1]):
                return True
        elif key == pattern:
            return True
    return False


@dataclass(frozen=True)
class Link:
    """What the controller needs of a Link's spec, validated."""

    name: str
    namespace: str
    target_cluster_name: str
    target_cluster_domain: str
    credentials_secret: str
    gateway_addresses: tuple[str, ...] = ()
    gateway_port: int | None = None
    gateway_identity: str = ""
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    selector: Selector = EMPTY_SELECTOR
    remote_discovery_selector: Selector = EMPTY_SELECTOR
    federated_selector: Selector = EMPTY_SELECTOR
    excluded_labels: tuple[str, ...] = ()
    excluded_annotations: tuple[str, ...] = ()
    target_linkerd_namespace: str = "linkerd"

    @property
    def has_gateway(self) -> bool:
        return bool(self.gateway_addresses) and self.gateway_port is not None


def _required_str(spec: Mapping[str, Any], key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise LinkError(f"spec.{key} must be a non-empty string, got {value!r}")
    return value


def parse_link(obj: Mapping[str, Any]) -> Link:
    """The Link in ``obj`` (its JSON form); ``LinkError`` names the first bad field."""
    meta = obj.get("metadata")
    spec = obj.get("spec")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        raise LinkError("metadata.name is missing")
    if not isinstance(spec, Mapping):
        raise LinkError("spec is missing")
    addresses_text = spec.get("gatewayAddress") or ""
    if not isinstance(addresses_text, str):
        raise LinkError(
            f"spec.gatewayAddress must be a comma-separated string, got {addresses_text!r}"
        )
    addresses = tuple(a.strip() for a in addresses_text.split(",") if a.strip())
    port_value = spec.get("gatewayPort")
    gateway_port = (
        None
        if port_value in (None, "", 0, "0")
        else _int(port_value, "spec.gatewayPort", low=1, high=65535)
    )
    identity = spec.get("gatewayIdentity") or ""
    if not isinstance(identity, str):
        raise LinkError("spec.gatewayIdentity must be a string")
    linkerd_ns = spec.get("targetClusterLinkerdNamespace") or "linkerd"
    if not isinstance(linkerd_ns, str):
        raise LinkError("spec.targetClusterLinkerdNamespace must be a string")
    return Link(
        name=meta["name"],
        namespace=str(meta.get("namespace") or labels.NAMESPACE),
        target_cluster_name=_required_str(spec, "targetClusterName"),
        target_cluster_domain=_required_str(spec, "targetClusterDomain"),
        credentials_secret=_required_str(spec, "clusterCredentialsSecret"),
        gateway_addresses=addresses,
        gateway_port=gateway_port,
        gateway_identity=identity,
        probe=_probe_spec(spec.get("probeSpec")),
        selector=parse_selector(spec.get("selector"), "spec.selector"),
        remote_discovery_selector=parse_selector(
            spec.get("remoteDiscoverySelector"), "spec.remoteDiscoverySelector"
        ),
        federated_selector=parse_selector(
            spec.get("federatedServiceSelector"), "spec.federatedServiceSelector"
        ),
        excluded_labels=_string_list(spec.get("excludedLabels"), "spec.excludedLabels"),
        excluded_annotations=_string_list(
            spec.get("excludedAnnotations"), "spec.excludedAnnotations"
        ),
        target_linkerd_namespace=linkerd_ns,
    )
