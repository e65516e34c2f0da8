"""Builders for the policy tests: pods, namespaces and policy resources as the API holds them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mesh.k8s.objects import Container, ContainerPort, Pod
from mesh.policy import (
    ALL_NETWORKS,
    Authorization,
    DefaultPolicy,
    InboundServer,
    PolicyConfig,
    Protocol,
    Ref,
    TlsAuthenticated,
    Unauthenticated,
    parse_networks,
)
from mesh.policy.resources import (
    AuthorizationPolicy,
    LabelSelector,
    MeshTLSAuthentication,
    Namespace,
    NetworkAuthentication,
    NetworkMatch,
    ResourceRef,
    Server,
)

NS = "shop"
CLUSTER_NETWORKS = parse_networks("10.0.0.0/8,192.168.0.0/16")
CONFIG = PolicyConfig(
    cluster_domain="east.example",
    trust_domain="mesh.example",
    control_plane_ns="linkerd",
    cluster_networks=CLUSTER_NETWORKS,
)
ANY_IDENTITY = TlsAuthenticated(suffixes=("",))


def identity(sa: str, ns: str = NS) -> str:
    return f"{sa}.{ns}.serviceaccount.identity.linkerd.mesh.example"


def pod(
    name: str = "web-0",
    *,
    ns: str = NS,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ports: Sequence[ContainerPort] = (ContainerPort(8080, "http"), ContainerPort(3306, "db")),
) -> Pod:
    return Pod(
        namespace=ns,
        name=name,
        service_account="web",
        ip="10.0.0.1",
        ips=("10.0.0.1",),
        containers=(
            Container("app", tuple(ports)),
            Container("linkerd-proxy", (ContainerPort(4191, "linkerd-admin"),)),
        ),
        labels=dict({"app": "web"} if labels is None else labels),
        annotations=dict(annotations or {}),
    )


def namespace(name: str = NS, annotations: Mapping[str, str] | None = None) -> Namespace:
    return Namespace(name, annotations=dict(annotations or {}))


def server(
    name: str = "web-http",
    *,
    ns: str = NS,
    port: int | str = "http",
    selector: Mapping[str, str] | None = None,
    protocol: str = "unknown",
    access_policy: str = "",
    created: str = "2025-01-01T00:00:00Z",
    labels: Mapping[str, str] | None = None,
) -> Server:
    return Server(
        namespace=ns,
        name=name,
        port=port,
        pod_selector=LabelSelector(dict({"app": "web"} if selector is None else selector)),
        proxy_protocol=protocol,
        access_policy=access_policy,
        created=created,
        labels=dict(labels or {}),
    )


def ref(kind: str, name: str, *, group: str = "policy.linkerd.io", ns: str = "") -> ResourceRef:
    return ResourceRef(group, kind, name, ns)


def policy(
    name: str,
    *authentications: ResourceRef,
    target: ResourceRef | None = None,
    ns: str = NS,
) -> AuthorizationPolicy:
    return AuthorizationPolicy(
        namespace=ns,
        name=name,
        target=target if target is not None else ref("Server", "web-http"),
        authentications=authentications,
    )


def meshtls(
    name: str, *identities: str, refs: Sequence[ResourceRef] = (), ns: str = NS
) -> MeshTLSAuthentication:
    return MeshTLSAuthentication(ns, name, identities=identities, identity_refs=tuple(refs))


def networks(
    name: str, *cidrs: str | tuple[str, Sequence[str]], ns: str = NS
) -> NetworkAuthentication:
    matches = [
        NetworkMatch(c, ()) if isinstance(c, str) else NetworkMatch(c[0], tuple(c[1]))
        for c in cidrs
    ]
    return NetworkAuthentication(ns, name, networks=tuple(matches))


def default(
    policy_name: str | DefaultPolicy, protocol: Protocol = Protocol.DETECT
) -> InboundServer:
    """The server Linkerd gives a port that only the default policy ``policy_name`` covers."""
    name = DefaultPolicy(policy_name).value
    ref_ = Ref.default(name)
    authz: tuple[Authorization, ...]
    match name:
        case "all-unauthenticated" | "audit":
            authz = (Authorization(ref_, ALL_NETWORKS, Unauthenticated()),)
        case "all-authenticated":
            authz = (Authorization(ref_, ALL_NETWORKS, ANY_IDENTITY),)
        case "cluster-unauthenticated":
            authz = (Authorization(ref_, CLUSTER_NETWORKS, Unauthenticated()),)
        case "cluster-authenticated":
            authz = (Authorization(ref_, CLUSTER_NETWORKS, ANY_IDENTITY),)
        case _:
            authz = ()
    return InboundServer(ref_, protocol, authz)
