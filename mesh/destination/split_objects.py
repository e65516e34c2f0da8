"""Typed traffic-split objects: SMI ``TrafficSplit`` and Gateway API / Linkerd ``HTTPRoute``.

Pure conversion from the raw JSON the API server sends (a ``dict``) into frozen
dataclasses; the destination service's I/O edge hands objects over as
``obj.to_dict()``. Rules:

- Weights become integer milli-units, whatever the source wrote: SMI v1alpha1
  writes quantities (``500m``, ``1``, ``2k``), v1alpha2 and HTTPRoute integers.
  A negative, fractional-milli or unparseable weight makes the object unusable
  (``ValueError``), which the watch reports as a Warning Event (SEC-4).
- A ``backendRef`` without ``weight`` has weight 1 (Gateway API's default).
- Header names are lower-cased; a regular expression that does not compile
  makes the object unusable, so proxies are never handed a pattern they cannot
  use.
- Only what routing uses is kept; filters, timeouts and query-parameter matches
  are not read (a rule using them still routes by its backends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from mesh.k8s.objects import ObjectKey

__all__ = [
    "GATEWAY_GROUP",
    "MAX_WEIGHT",
    "POLICY_GROUP",
    "SPLIT_GROUP",
    "BackendRef",
    "HeaderMatch",
    "HttpRoute",
    "ParentRef",
    "PathKind",
    "PolicyHttpRoute",
    "RouteMatch",
    "RouteRule",
    "SplitBackend",
    "TrafficSplit",
    "http_route",
    "milli_weight",
    "traffic_split",
]

SPLIT_GROUP = "split.smi-spec.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"
POLICY_GROUP = "policy.linkerd.io"
MAX_WEIGHT = 2**32 - 1
"""The largest weight (milli-units) the destination API can carry."""

_SUFFIXES = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
}
_QUANTITY = re.compile(r"^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|Ki|Mi|Gi)?$")

Raw = dict[str, Any]


def milli_weight(value: object, what: str) -> int:
    """A weight (an integer, or a Kubernetes quantity string) in milli-units."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: weight must be a number, not {value!r}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        found = _QUANTITY.match(value.strip())
        if found is None:
            raise ValueError(f"{what}: weight {value!r} is not a non-negative quantity")
        try:
            amount = Decimal(found.group(1)) * _SUFFIXES[found.group(2) or ""]
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise ValueError(f"{what}: weight {value!r} is not a number") from None
    else:
        raise ValueError(f"{what}: weight must be an integer or a quantity, not {value!r}")
    milli = amount * 1000
    if milli < 0:
        raise ValueError(f"{what}: weight {value!r} is negative")
    if milli != milli.to_integral_value():
        raise ValueError(f"{what}: weight {value!r} is finer than a milli-unit")
    if milli > MAX_WEIGHT:
        raise ValueError(f"{what}: weight {value!r} is too large")
    return int(milli)


def _mapping(value: object, what: str) -> Raw:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def _text(value: object, what: str, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise ValueError(f"{what} is required")
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _port(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"{what} must be a port number (1-65535), not {value!r}")
    return value


def _meta(obj: Raw) -> tuple[str, str, Raw]:
    meta = _mapping(obj.get("metadata"), "metadata")
    namespace = _text(meta.get("namespace"), "metadata.namespace", required=True)
    name = _text(meta.get("name"), "metadata.name", required=True)
    return namespace, name, meta


@dataclass(frozen=True)
class SplitBackend:
    """One backend of a TrafficSplit: a Service in the split's namespace."""

    service: str
    weight: int
    """Milli-units."""


@dataclass(frozen=True)
class TrafficSplit:
    """An SMI TrafficSplit: requests to ``apex`` divided among ``backends`` by weight."""

    namespace: str
    name: str
    apex: str
    backends: tuple[SplitBackend, ...]
    api_version: str = f"{SPLIT_GROUP}/v1alpha2"
    uid: str = ""
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)

    @property
    def total_weight(self) -> int:
        return sum(b.weight for b in self.backends)


def _strings(value: object, what: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(value, what).items()}


def traffic_split(obj: Raw) -> TrafficSplit:
    """The typed TrafficSplit of a raw object (either served version)."""
    namespace, name, meta = _meta(obj)
    spec = _mapping(obj.get("spec"), "spec")
    backends = []
    for i, raw in enumerate(_list(spec.get("backends"), "spec.backends")):
        entry = _mapping(raw, f"spec.backends[{i}]")
        backends.append(
            SplitBackend(
                _text(entry.get("service"), f"spec.backends[{i}].service", required=True),
                milli_weight(entry.get("weight"), f"spec.backends[{i}]"),
            )
        )
    return TrafficSplit(
        namespace=namespace,
        name=name,
        apex=_text(spec.get("service"), "spec.service", required=True),
        backends=tuple(backends),
        api_version=_text(obj.get("apiVersion"), "apiVersion") or f"{SPLIT_GROUP}/v1alpha2",
        uid=_text(meta.get("uid"), "metadata.uid"),
        labels=_strings(meta.get("labels"), "metadata.labels"),
        annotations=_strings(meta.get("annotations"), "metadata.annotations"),
    )


class PathKind:
    """Gateway API path match types."""

    PREFIX = "PathPrefix"
    EXACT = "Exact"
    REGEX = "RegularExpression"


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    """Lower case."""
    value: str
    regex: bool = False


@dataclass(frozen=True)
class RouteMatch:
    """One ``matches`` entry: every given condition must hold."""

    path_kind: str = PathKind.PREFIX
    path: str = "/"
    headers: tuple[HeaderMatch, ...] = ()
    method: str = ""


@dataclass(frozen=True)
class BackendRef:
    group: str
    kind: str
    name: str
    namespace: str
    port: int | None
    weight: int
    """Milli-units."""

    @property
    def is_service(self) -> bool:
        return self.group in ("", "core") and self.kind == "Service"


@dataclass(frozen=True)
class RouteRule:
    matches: tuple[RouteMatch, ...]
    backends: tuple[BackendRef, ...]


@dataclass(frozen=True)
class ParentRef:
    group: str
    kind: str
    name: str
    namespace: str
    port: int | None

    @property
    def is_service(self) -> bool:
        return self.group in ("", "core") and self.kind == "Service"


@dataclass(frozen=True)
class HttpRoute:
    """An HTTPRoute (``gateway.networking.k8s.io`` or ``policy.linkerd.io``)."""

    namespace: str
    name: str
    group: str
    parents: tuple[ParentRef, ...]
    rules: tuple[RouteRule, ...]
    created: str = ""
    """creationTimestamp (RFC 3339, so it sorts as text): older routes take precedence."""
    uid: str = ""
    api_version: str = f"{GATEWAY_GROUP}/v1"

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.namespace, self.name)


class PolicyHttpRoute(HttpRoute):
    """An HTTPRoute of ``policy.linkerd.io`` (its own kind, so each group's watch lists apart)."""


def _regex(pattern: str, what: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"{what}: {pattern!r} is not a regular expression: {e}") from None
    return pattern


def _match(raw: object, what: str) -> RouteMatch:
    entry = _mapping(raw, what)
    path = _mapping(entry.get("path"), f"{what}.path")
    kind = _text(path.get("type"), f"{what}.path.type") or PathKind.PREFIX
    value = _text(path.get("value"), f"{what}.path.value") or "/"
    if kind == PathKind.REGEX:
        _regex(value, f"{what}.path.value")
    elif kind not in (PathKind.PREFIX, PathKind.EXACT):
        raise ValueError(f"{what}.path.type {kind!r} is not Exact, PathPrefix or RegularExpression")
    elif not value.startswith("/"):
        raise ValueError(f"{what}.path.value {value!r} must start with '/'")
    headers = []
    for i, h in enumerate(_list(entry.get("headers"), f"{what}.headers")):
        hwhat = f"{what}.headers[{i}]"
        header = _mapping(h, hwhat)
        htype = _text(header.get("type"), f"{hwhat}.type") or "Exact"
        if htype not in ("Exact", "RegularExpression"):
            raise ValueError(f"{hwhat}.type {htype!r} is not Exact or RegularExpression")
        hvalue = _text(header.get("value"), f"{hwhat}.value")
        if htype == "RegularExpression":
            _regex(hvalue, f"{hwhat}.value")
        headers.append(
            HeaderMatch(
                _text(header.get("name"), f"{hwhat}.name", required=True).lower(),
                hvalue,
                regex=htype == "RegularExpression",
            )
        )
    return RouteMatch(
        kind, value, tuple(headers), _text(entry.get("method"), f"{what}.method").upper()
    )


def _backend(raw: object, what: str, namespace: str) -> BackendRef:
    entry = _mapping(raw, what)
    weight = entry.get("weight")
    return BackendRef(
        group=_text(entry.get("group"), f"{what}.group"),
        kind=_text(entry.get("kind"), f"{what}.kind") or "Service",
        name=_text(entry.get("name"), f"{what}.name", required=True),
        namespace=_text(entry.get("namespace"), f"{what}.namespace") or namespace,
        port=_port(entry.get("port"), f"{what}.port"),
        weight=1000 if weight is None else milli_weight(weight, what),
    )


def _parent(raw: object, what: str, namespace: str) -> ParentRef:
    entry = _mapping(raw, what)
    return ParentRef(
        group=_text(entry.get("group"), f"{what}.group"),
        kind=_text(entry.get("kind"), f"{what}.kind") or "Gateway",
        name=_text(entry.get("name"), f"{what}.name", required=True),
        namespace=_text(entry.get("namespace"), f"{what}.namespace") or namespace,
        port=_port(entry.get("port"), f"{what}.port"),
    )


def http_route(obj: Raw) -> HttpRoute:
    """The typed HTTPRoute of a raw object of either API group."""
    namespace, name, meta = _meta(obj)
    api_version = _text(obj.get("apiVersion"), "apiVersion") or f"{GATEWAY_GROUP}/v1"
    spec = _mapping(obj.get("spec"), "spec")
    parents = tuple(
        _parent(p, f"spec.parentRefs[{i}]", namespace)
        for i, p in enumerate(_list(spec.get("parentRefs"), "spec.parentRefs"))
    )
    rules = []
    for i, raw in enumerate(_list(spec.get("rules"), "spec.rules")):
        rule = _mapping(raw, f"spec.rules[{i}]")
        matches = tuple(
            _match(m, f"spec.rules[{i}].matches[{j}]")
            for j, m in enumerate(_list(rule.get("matches"), f"spec.rules[{i}].matches"))
        )
        backends = tuple(
            _backend(b, f"spec.rules[{i}].backendRefs[{j}]", namespace)
            for j, b in enumerate(_list(rule.get("backendRefs"), f"spec.rules[{i}].backendRefs"))
        )
        rules.append(RouteRule(matches or (RouteMatch(),), backends))
    if not rules:  # Gateway API: no rules is one rule matching every request
        rules.append(RouteRule((RouteMatch(),), ()))
    kind = PolicyHttpRoute if api_version.partition("/")[0] == POLICY_GROUP else HttpRoute
    return kind(
        namespace=namespace,
        name=name,
        group=api_version.partition("/")[0],
        parents=parents,
        rules=tuple(rules),
        created=_text(meta.get("creationTimestamp"), "metadata.creationTimestamp"),
        uid=_text(meta.get("uid"), "metadata.uid"),
        api_version=api_version,
    )
