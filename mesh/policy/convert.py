"""Convert lightkube objects into the policy service's typed snapshots.

Namespaces come as lightkube models; the ``policy.linkerd.io`` resources as
lightkube generic resources (raw JSON in a dict), declared here at the versions
the mesh's CRDs store. Conversion never raises: a resource whose fields make
no sense becomes a snapshot carrying the reason in ``error`` (logged once
here), which the core ignores.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1

from mesh.policy.resources import (
    POLICY_GROUP,
    AuthorizationPolicy,
    LabelSelector,
    MeshTLSAuthentication,
    Namespace,
    NetworkAuthentication,
    NetworkMatch,
    Requirement,
    ResourceRef,
    Server,
    ServerAuthorization,
)

__all__ = [
    "AuthorizationPolicyResource",
    "MeshTLSAuthenticationResource",
    "NetworkAuthenticationResource",
    "ServerAuthorizationResource",
    "ServerResource",
    "authorization_policy",
    "meshtls_authentication",
    "namespace",
    "network_authentication",
    "server",
    "server_authorization",
]

_log = logging.getLogger(__name__)

ServerResource = create_namespaced_resource(POLICY_GROUP, "v1beta3", "Server", "servers")
ServerAuthorizationResource = create_namespaced_resource(
    POLICY_GROUP, "v1beta1", "ServerAuthorization", "serverauthorizations"
)
AuthorizationPolicyResource = create_namespaced_resource(
    POLICY_GROUP, "v1alpha1", "AuthorizationPolicy", "authorizationpolicies"
)
MeshTLSAuthenticationResource = create_namespaced_resource(
    POLICY_GROUP, "v1alpha1", "MeshTLSAuthentication", "meshtlsauthentications"
)
NetworkAuthenticationResource = create_namespaced_resource(
    POLICY_GROUP, "v1alpha1", "NetworkAuthentication", "networkauthentications"
)

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_MAX_PORT = 65535

Raw = Mapping[str, Any]
T = TypeVar("T")


class _Invalid(ValueError):
    """A field of a resource that makes no sense; the message says which."""


def namespace(obj: core_v1.Namespace) -> Namespace:
    """The snapshot of a Namespace."""
    meta = obj.metadata or ObjectMeta()
    return Namespace(
        name=meta.name or "",
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
    )


def _body(obj: GenericNamespacedResource | Raw) -> dict[str, Any]:
    to_dict = getattr(obj, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(obj)


def _mapping(value: object, what: str) -> Raw:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Invalid(f"{what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"{what} is not a list")
    return value


def _text(value: object, what: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _Invalid(f"{what} must be a non-empty string")
    return value


def _strings(value: object, what: str) -> tuple[str, ...]:
    return tuple(_text(v, what, required=True) for v in _list(value, what))


def _labels(value: object, what: str) -> dict[str, str]:
    return {str(k): _text(v, f"{what}.{k}") for k, v in _mapping(value, what).items()}


def _selector(value: object, what: str) -> LabelSelector:
    raw = _mapping(value, what)
    requirements = []
    for item in _list(raw.get("matchExpressions"), f"{what}.matchExpressions"):
        entry = _mapping(item, f"{what}.matchExpressions[]")
        operator = _text(entry.get("operator"), "operator", required=True)
        if operator not in _OPERATORS:
            raise _Invalid(f"{what}: unknown operator {operator!r}")
        requirements.append(
            Requirement(
                key=_text(entry.get("key"), "key", required=True),
                operator=operator,
                values=_strings(entry.get("values"), "values"),
            )
        )
    return LabelSelector(
        _labels(raw.get("matchLabels"), f"{what}.matchLabels"), tuple(requirements)
    )


def _cidr(value: object, what: str) -> str:
    text = _text(value, what, required=True)
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError as e:
        raise _Invalid(f"{what}: {e}") from None


def _networks(value: object, what: str) -> tuple[NetworkMatch, ...]:
    networks = []
    for item in _list(value, what):
        entry = _mapping(item, f"{what}[]")
        networks.append(
            NetworkMatch(
                _cidr(entry.get("cidr"), f"{what}[].cidr"),
                tuple(_cidr(e, f"{what}[].except") for e in _list(entry.get("except"), "except")),
            )
        )
    return tuple(networks)


def _ref(value: object, what: str) -> ResourceRef:
    raw = _mapping(value, what)
    return ResourceRef(
        group=_text(raw.get("group"), f"{what}.group"),
        kind=_text(raw.get("kind"), f"{what}.kind", required=True),
        name=_text(raw.get("name"), f"{what}.name"),
        namespace=_text(raw.get("namespace"), f"{what}.namespace"),
    )


def _port(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value <= _MAX_PORT:
            raise _Invalid(f"spec.port {value} is out of range")
        return value
    return _text(value, "spec.port", required=True)


def _convert(
    kind: str,
    obj: GenericNamespacedResource | Raw,
    build: Callable[[str, str, dict[str, Any], Raw], T],
    invalid: Callable[[str, str, str], T],
) -> T:
    body = _body(obj)
    meta = body.get("metadata") or {}
    ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    try:
        return build(ns, name, meta, _mapping(body.get("spec"), "spec"))
    except _Invalid as e:
        _log.warning("%s %s/%s is ignored: %s", kind, ns, name, e)
        return invalid(ns, name, str(e))


def _server(ns: str, name: str, meta: dict[str, Any], spec: Raw) -> Server:
    if spec.get("podSelector") is not None:
        selector: LabelSelector | None = _selector(spec["podSelector"], "spec.podSelector")
    elif spec.get("externalWorkloadSelector") is not None:
        selector = None
    else:
        raise _Invalid("spec.podSelector is missing")
    return Server(
        namespace=ns,
        name=name,
        port=_port(spec.get("port")),
        pod_selector=selector,
        proxy_protocol=_text(spec.get("proxyProtocol"), "spec.proxyProtocol") or "unknown",
        access_policy=_text(spec.get("accessPolicy"), "spec.accessPolicy"),
        labels=_labels(meta.get("labels"), "metadata.labels"),
        created=str(meta.get("creationTimestamp") or ""),
    )


def server(obj: GenericNamespacedResource | Raw) -> Server:
    """The snapshot of a ``Server``."""
    return _convert("Server", obj, _server, lambda ns, n, e: Server(ns, n, error=e))


def _server_authorization(
    ns: str, name: str, meta: dict[str, Any], spec: Raw
) -> ServerAuthorization:
    target = _mapping(spec.get("server"), "spec.server")
    client = _mapping(spec.get("client"), "spec.client")
    mtls = client.get("meshTLS")
    mtls_raw = _mapping(mtls, "spec.client.meshTLS")
    accounts = []
    for item in _list(mtls_raw.get("serviceAccounts"), "serviceAccounts"):
        entry = _mapping(item, "serviceAccounts[]")
        accounts.append(
            (
                _text(entry.get("namespace"), "serviceAccounts[].namespace"),
                _text(entry.get("name"), "serviceAccounts[].name", required=True),
            )
        )
    return ServerAuthorization(
        namespace=ns,
        name=name,
        server_name=_text(target.get("name"), "spec.server.name"),
        server_selector=_selector(target.get("selector"), "spec.server.selector"),
        networks=_networks(client.get("networks"), "spec.client.networks"),
        unauthenticated=client.get("unauthenticated") is True,
        tls_any=mtls is not None and mtls_raw.get("unauthenticatedTLS") is True,
        identities=_strings(mtls_raw.get("identities"), "identities"),
        service_accounts=tuple(accounts),
    )


def server_authorization(obj: GenericNamespacedResource | Raw) -> ServerAuthorization:
    """The snapshot of a ``ServerAuthorization``."""
    return _convert(
        "ServerAuthorization",
        obj,
        _server_authorization,
        lambda ns, n, e: ServerAuthorization(ns, n, error=e),
    )


def _authorization_policy(
    ns: str, name: str, meta: dict[str, Any], spec: Raw
) -> AuthorizationPolicy:
    refs = _list(spec.get("requiredAuthenticationRefs"), "spec.requiredAuthenticationRefs")
    return AuthorizationPolicy(
        namespace=ns,
        name=name,
        target=_ref(spec.get("targetRef"), "spec.targetRef"),
        authentications=tuple(_ref(r, "spec.requiredAuthenticationRefs[]") for r in refs),
    )


def authorization_policy(obj: GenericNamespacedResource | Raw) -> AuthorizationPolicy:
    """The snapshot of an ``AuthorizationPolicy``."""
    return _convert(
        "AuthorizationPolicy",
        obj,
        _authorization_policy,
        lambda ns, n, e: AuthorizationPolicy(ns, n, error=e),
    )


def _meshtls(ns: str, name: str, meta: dict[str, Any], spec: Raw) -> MeshTLSAuthentication:
    refs = _list(spec.get("identityRefs"), "spec.identityRefs")
    return MeshTLSAuthentication(
        namespace=ns,
        name=name,
        identities=_strings(spec.get("identities"), "spec.identities"),
        identity_refs=tuple(_ref(r, "spec.identityRefs[]") for r in refs),
    )


def meshtls_authentication(obj: GenericNamespacedResource | Raw) -> MeshTLSAuthentication:
    """The snapshot of a ``MeshTLSAuthentication``."""
    return _convert(
        "MeshTLSAuthentication",
        obj,
        _meshtls,
        lambda ns, n, e: MeshTLSAuthentication(ns, n, error=e),
    )


def _network_authn(ns: str, name: str, meta: dict[str, Any], spec: Raw) -> NetworkAuthentication:
    networks = _networks(spec.get("networks"), "spec.networks")
    if not networks:
        raise _Invalid("spec.networks is empty")
    return NetworkAuthentication(namespace=ns, name=name, networks=networks)


def network_authentication(obj: GenericNamespacedResource | Raw) -> NetworkAuthentication:
    """The snapshot of a ``NetworkAuthentication``."""
    return _convert(
        "NetworkAuthentication",
        obj,
        _network_authn,
        lambda ns, n, e: NetworkAuthentication(ns, n, error=e),
    )
