"""Inbound policy of one pod port: the ``Server`` selecting it, or the pod's default.

Rules, following Linkerd's policy controller:
- The proxy admin port is always ``all-unauthenticated`` (see ``defaults``).
- A ``Server`` of the pod's namespace selects the port when its ``podSelector``
  matches the pod's labels and its ``port`` is the port's number or the name of
  one of the pod's TCP container ports. If several do, the oldest wins (then
  the first by name). A selected port is served as the Server says
  (``proxyProtocol``: ``unknown`` = detect, ``HTTP/1``, ``opaque``; ``TLS`` is
  served opaque; ``HTTP/2`` and ``gRPC`` are detected, since the proxy speaks
  HTTP/1) and admits only what authorizes it, so a Server nothing authorizes
  denies everything.
- Its authorizations: each ``ServerAuthorization`` selecting it (by name or
  by the Server's labels); each ``AuthorizationPolicy`` whose ``targetRef`` is
  the Server or the namespace; and, when the Server sets ``accessPolicy``, that
  default policy's authorization.
- An ``AuthorizationPolicy`` becomes one authorization that a client passes
  only by passing *every* referenced authentication: identities from one
  ``MeshTLSAuthentication`` or ``ServiceAccount`` (none: unauthenticated) and
  networks from one ``NetworkAuthentication`` (none: all networks). A policy
  naming a missing authentication, or two of one kind, is ignored, which leaves
  the port denied unless something else authorizes it.
- Kubelet probes: the paths of the pod's liveness, readiness and startup
  ``httpGet`` probes on the port (a named probe port is resolved against its
  container's ports; the query is dropped) go with the port's policy, sorted
  and unique, whether a Server selects it or a default policy covers it; the
  proxy admits a GET of them from anyone, even under ``deny``. Exec and
  ``tcpSocket`` probes need no authorization.
Pure: no I/O.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from mesh.k8s.objects import Pod
from mesh.policy.defaults import (
    DefaultPolicy,
    PolicyConfig,
    admin_port,
    default_authorizations,
    default_server,
    pod_default_server,
    pod_port_names,
    tls_authentication,
)
from mesh.policy.model import (
    ALL_NETWORKS,
    Authentication,
    Authorization,
    InboundServer,
    Network,
    Protocol,
    Ref,
    TlsAuthenticated,
    Unauthenticated,
)
from mesh.policy.resources import (
    POLICY_GROUP,
    AuthorizationPolicy,
    NetworkMatch,
    Server,
    ServerAuthorization,
)
from mesh.policy.snapshot import PolicySnapshot

__all__ = [
    "PolicyError",
    "authorization_policy_authorization",
    "inbound_server",
    "probe_paths",
    "selecting_server",
    "server_authorization_authorization",
    "server_policy",
    "server_protocol",
]

_log = logging.getLogger(__name__)

_PROTOCOLS = {
    "unknown": Protocol.DETECT,
    "HTTP/1": Protocol.HTTP1,
    "HTTP/2": Protocol.DETECT,
    "gRPC": Protocol.DETECT,
    "opaque": Protocol.OPAQUE,
    "TLS": Protocol.OPAQUE,
}


class PolicyError(ValueError):
    """An authorization resource that cannot be honoured; the message says why."""


def server_protocol(server: Server) -> Protocol:
    """How the proxy serves a port ``server`` selects."""
    return _PROTOCOLS.get(server.proxy_protocol, Protocol.DETECT)


def _server_ports(server: Server, pod: Pod) -> tuple[int, ...]:
    if isinstance(server.port, int):
        return (server.port,)
    return pod_port_names(pod).get(server.port, ())


def selecting_server(snapshot: PolicySnapshot, pod: Pod, port: int) -> Server | None:
    """The Server of the pod's namespace that selects ``port`` of ``pod``, if any."""
    candidates = [
        s
        for s in snapshot.servers(pod.namespace)
        if not s.error
        and s.pod_selector is not None
        and s.pod_selector.matches(pod.labels)
        and port in _server_ports(s, pod)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (not s.created, s.created, s.name))


def _networks(matches: tuple[NetworkMatch, ...]) -> tuple[Network, ...]:
    return tuple(Network(m.cidr, m.excepted) for m in matches)


def server_authorization_authorization(
    saz: ServerAuthorization, config: PolicyConfig
) -> Authorization:
    """The authorization a ServerAuthorization grants; ``PolicyError`` if it grants nothing."""
    authentication: Authentication
    if saz.unauthenticated:
        authentication = Unauthenticated()
    elif saz.tls_any:
        # Linkerd admits TLS clients without an identity here; ours always have one.
        authentication = TlsAuthenticated(suffixes=("",))
    else:
        identities = [
            *saz.identities,
            *(
                config.service_account_identity(ns or saz.namespace, sa)
                for ns, sa in saz.service_accounts
            ),
        ]
        if not identities:
            raise PolicyError("authorizes no clients: set unauthenticated or meshTLS")
        authentication = tls_authentication(identities)
    networks = _networks(saz.networks) or config.cluster_networks
    return Authorization(Ref.server_authorization(saz.name), networks, authentication)


def _identities(
    policy: AuthorizationPolicy, snapshot: PolicySnapshot, config: PolicyConfig
) -> TlsAuthenticated | None:
    found: TlsAuthenticated | None = None
    for ref in policy.authentications:
        if ref.refers_to(POLICY_GROUP, "MeshTLSAuthentication"):
            key = ref.key(policy.namespace)
            authn = snapshot.meshtls_authentication(key)
            if authn is None or authn.error:
                raise PolicyError(f"could not find MeshTLSAuthentication {key}")
            patterns = [*authn.identities]
            for id_ref in authn.identity_refs:
                if id_ref.refers_to("", "ServiceAccount"):
                    namespace = id_ref.namespace or authn.namespace
                    patterns.append(config.service_account_identity(namespace, id_ref.name))
                elif id_ref.refers_to("", "Namespace"):
                    patterns.append(f"*.{config.identity_suffix(id_ref.name)}")
                else:
                    raise PolicyError(f"MeshTLSAuthentication {key}: unsupported {id_ref.kind}")
            if not patterns:
                raise PolicyError(f"MeshTLSAuthentication {key} names no identities")
            identities = tls_authentication(patterns)
        elif ref.refers_to("", "ServiceAccount"):
            key = ref.key(policy.namespace)
            identities = TlsAuthenticated(
                (config.service_account_identity(key.namespace, key.name),)
            )
        else:
            continue
        if found is not None:
            raise PolicyError("names more than one MeshTLSAuthentication or ServiceAccount")
        found = identities
    return found


def _client_networks(
    policy: AuthorizationPolicy, snapshot: PolicySnapshot
) -> tuple[Network, ...] | None:
    found: tuple[Network, ...] | None = None
    for ref in policy.authentications:
        if not ref.refers_to(POLICY_GROUP, "NetworkAuthentication"):
            continue
        key = ref.key(policy.namespace)
        authn = snapshot.network_authentication(key)
        if authn is None or authn.error:
            raise PolicyError(f"could not find NetworkAuthentication {key}")
        if found is not None:
            raise PolicyError("names more than one NetworkAuthentication")
        found = _networks(authn.networks)
    return found


def authorization_policy_authorization(
    policy: AuthorizationPolicy, snapshot: PolicySnapshot, config: PolicyConfig
) -> Authorization:
    """The one authorization ``policy`` grants: every referenced authentication must admit."""
    if policy.error:
        raise PolicyError(policy.error)
    for ref in policy.authentications:
        if not (
            ref.refers_to(POLICY_GROUP, "MeshTLSAuthentication")
            or ref.refers_to(POLICY_GROUP, "NetworkAuthentication")
            or ref.refers_to("", "ServiceAccount")
        ):
            raise PolicyError(f"unsupported authentication {ref.group}/{ref.kind}")
    identities = _identities(policy, snapshot, config)
    networks = _client_networks(policy, snapshot)
    return Authorization(
        Ref.authorization_policy(policy.name),
        networks if networks is not None else ALL_NETWORKS,
        identities if identities is not None else Unauthenticated(),
    )


def _targets(policy: AuthorizationPolicy, server: Server) -> bool:
    target = policy.target
    if target.refers_to(POLICY_GROUP, "Server"):
        return target.name == server.name
    return target.refers_to("", "Namespace")


def server_policy(snapshot: PolicySnapshot, config: PolicyConfig, server: Server) -> InboundServer:
    """The policy of every port ``server`` selects."""
    authorizations: list[Authorization] = []
    for saz in snapshot.server_authorizations(server.namespace):
        if saz.error:
            continue
        if saz.server_name:
            if saz.server_name != server.name:
                continue
        elif not saz.server_selector.matches(server.labels):
            continue
        try:
            authorizations.append(server_authorization_authorization(saz, config))
        except PolicyError as e:
            _log.debug("ServerAuthorization %s ignored: %s", saz.key, e)
    for policy in snapshot.authorization_policies(server.namespace):
        if not _targets(policy, server):
            continue
        try:
            authorizations.append(authorization_policy_authorization(policy, snapshot, config))
        except PolicyError as e:
            _log.debug("AuthorizationPolicy %s ignored: %s", policy.key, e)
    access = DefaultPolicy.parse(server.access_policy) if server.access_policy else None
    if access is not None:
        authorizations.extend(default_authorizations(access, config))
    return InboundServer(
        ref=Ref.server(server.name),
        protocol=server_protocol(server),
        authorizations=tuple(authorizations),
        detect_timeout=config.detect_timeout,
    )


def probe_paths(pod: Pod, port: int) -> tuple[str, ...]:
    """The sorted, unique paths of the pod's HTTP probes of ``port`` (queries dropped)."""
    paths = {
        probe.path.split("?", 1)[0] or "/"
        for container in pod.containers
        for probe in container.http_probes
        if container.probe_port(probe) == port
    }
    return tuple(sorted(paths))


def _port_server(
    snapshot: PolicySnapshot, config: PolicyConfig, pod: Pod, port: int
) -> InboundServer:
    if port == admin_port(pod, config):
        return default_server(DefaultPolicy.ALL_UNAUTHENTICATED, config)
    server = selecting_server(snapshot, pod, port)
    if server is not None:
        return server_policy(snapshot, config, server)
    return pod_default_server(pod, snapshot.namespace(pod.namespace), port, config)


def inbound_server(
    snapshot: PolicySnapshot, config: PolicyConfig, pod: Pod, port: int
) -> InboundServer:
    """The policy of ``port`` on ``pod`` in the cluster ``snapshot`` describes."""
    found = _port_server(snapshot, config, pod, port)
    paths = probe_paths(pod, port)
    return replace(found, probe_paths=paths) if paths else found
