"""Default inbound policies (CONF-36), set on the namespace and on the pod, as a table.

One deployment for the module, in the primary cluster: a namespace per default
policy (annotated with it) holding two meshed servers — ``by-namespace`` (no
annotation of its own: the namespace's policy) and ``by-pod-<policy>`` annotated
with a policy other than its namespace's (the pod's annotation wins). Every server
speaks HTTP on 8080 and a TCP hello on 9000 (opaque). Clients: meshed and
unmeshed pods in the same cluster; with two linked clusters on a flat network, an
unmeshed pod of the other cluster calling the server's pod IP directly, and a
meshed one calling the server's mirror (gateway mode: the server sees the
gateway's identity, from the gateway's address).

The expected verdict follows from what the server's proxy can see of the client:
whether it is authenticated (mesh TLS) and whether its address lies in the
cluster networks the mesh gave the proxy (``LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS``
of the server pod). A denied HTTP request gets 403 and is counted in
``inbound_http_authz_deny_total``; a denied TCP connection is closed before the
server's hello and counted in ``inbound_tcp_authz_deny_total``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from fixtures.mesh import Mesh
from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import LoadClient
from harness.reporting import Evidence
from suites.multicluster._support import gateway_pod, mirror
from suites.policy._support import (
    ALLOWED,
    DEFAULT_POLICY,
    DENIED,
    HTTP_PORT,
    TCP_PORT,
    Outcome,
    PolicyServer,
    Stage,
    converge_to,
    diagnose,
    http_probe,
    stage,
    tcp_probe,
    wait_metric,
)

pytestmark = pytest.mark.xdist_group("policy-defaults")

POLICIES = (
    "all-unauthenticated",
    "all-authenticated",
    "cluster-unauthenticated",
    "cluster-authenticated",
    "deny",
)
#: the namespace a pod annotated with policy P lives in is annotated with OTHER[P].
OTHER = {p: POLICIES[(i + 1) % len(POLICIES)] for i, p in enumerate(POLICIES)}
SHORT = dict(zip(POLICIES, ("all-unauth", "all-auth", "cl-unauth", "cl-auth", "deny"), strict=True))
SCOPES = ("namespace", "pod")
CASES = [(p, s) for p in POLICIES for s in SCOPES]
CLUSTER_NETWORKS_ENV = "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"
REMOTE = "source"


def admits(policy: str, authenticated: bool, in_cluster: bool) -> bool:
    """Whether default ``policy`` admits a client (CONF-36)."""
    return {
        "all-unauthenticated": True,
        "all-authenticated": authenticated,
        "cluster-unauthenticated": in_cluster,
        "cluster-authenticated": authenticated and in_cluster,
        "deny": False,
    }[policy]


@dataclass
class Deployed:
    stage: Stage
    cluster: str
    namespaces: dict[str, str]
    servers: dict[tuple[str, str], PolicyServer]
    clients_ns: str
    meshed: LoadClient
    unmeshed: LoadClient

    def server(self, policy: str, scope: str) -> PolicyServer:
        return self.servers[(policy, scope)]


@pytest.fixture(scope="module")
def deployed(mesh: Mesh) -> Iterator[Deployed]:
    """The module's servers (two per default policy) and local clients."""
    cluster = mesh.primary
    with stage(mesh, "pol-dflt") as made:
        namespaces = {
            p: made.namespace(p.replace("-", "")[:9], {DEFAULT_POLICY: p}) for p in POLICIES
        }
        servers: dict[tuple[str, str], PolicyServer] = {}
        for p in POLICIES:
            servers[(p, "namespace")] = made.server(cluster, namespaces[p], "by-namespace")
            servers[(p, "pod")] = made.server(
                cluster, namespaces[OTHER[p]], f"by-pod-{p}", annotations={DEFAULT_POLICY: p}
            )
        clients_ns = made.namespace("clients")
        meshed = made.client(cluster, clients_ns, "meshed", meshed=True)
        unmeshed = made.client(cluster, clients_ns, "unmeshed", meshed=False)
        for server in servers.values():
            server.pod(mesh)
        for client in (meshed, unmeshed):
            mesh.kube[cluster].wait_pod_ready(client.pod, clients_ns)
        yield Deployed(made, cluster, namespaces, servers, clients_ns, meshed, unmeshed)


@dataclass(frozen=True)
class Caller:
    """A client of the table: how it reaches a server and what the server sees of it."""

    name: str
    client: LoadClient
    authenticated: bool
    address: str
    """The client address the server's proxy sees."""
    via_mirror: bool = False


def _cluster_networks(mesh: Mesh, server: PolicyServer) -> list[ipaddress.IPv4Network]:
    pod = server.pod(mesh)
    assert pod.spec is not None
    for container in pod.spec.containers:
        for env in container.env or []:
            if env.name == CLUSTER_NETWORKS_ENV and env.value:
                return [
                    ipaddress.IPv4Network(n.strip())
                    for n in env.value.split(",")
                    if n.strip() and ":" not in n
                ]
    raise AssertionError(f"{server} has no {CLUSTER_NETWORKS_ENV} in its proxy's environment")


def _pod_ip(mesh: Mesh, cluster: str, namespace: str, name: str) -> str:
    pod = mesh.kube[cluster].wait_pod_ready(name, namespace)
    ip = pod.status.podIP if pod.status is not None else None
    assert ip, f"[{cluster}] pod {namespace}/{name} has no IP"
    return str(ip)


def _probe(
    mesh: Mesh, caller: Caller, server: PolicyServer, protocol: str, expected: str
) -> list[Outcome]:
    ip = server.ip(mesh)
    what = f"{caller.name} -> {server} over {protocol}"
    if protocol == "http":
        if caller.via_mirror:
            domain = mesh.clusters[REMOTE].domain
            url = f"http://{server.name}-{server.cluster}.{server.namespace}.svc.{domain}:{HTTP_PORT}/"
        else:
            url = f"http://{ip}:{HTTP_PORT}/"
        return converge_to(what, lambda: http_probe(caller.client, url, 3), expected)
    return converge_to(what, lambda: [tcp_probe(caller.client, f"{ip}:{TCP_PORT}")], expected)


def _check_table(
    mesh: Mesh,
    server: PolicyServer,
    policy: str,
    callers: Sequence[tuple[Caller, tuple[str, ...]]],
    evidence: Evidence,
) -> None:
    networks = _cluster_networks(mesh, server)
    before = server.metrics(mesh)
    http_deny0 = before.sum("inbound_http_authz_deny_total", srv_name=policy, srv_kind="default")
    tcp_deny0 = before.sum("inbound_tcp_authz_deny_total", srv_name=policy, srv_kind="default")
    rows, failures = [], []
    denied = {"http": 0, "tcp": 0}
    for caller, protocols in callers:
        in_cluster = any(ipaddress.ip_address(caller.address) in n for n in networks)
        expected = ALLOWED if admits(policy, caller.authenticated, in_cluster) else DENIED
        for protocol in protocols:
            try:
                seen = _probe(mesh, caller, server, protocol, expected)
                denied[protocol] += len(seen) if expected == DENIED else 0
                verdict = f"{expected}: {seen[-1]}"
            except AssertionError as e:
                verdict = f"NOT {expected}: {e}"
                failures.append(f"{caller.name} over {protocol}: {e}")
            rows.append(
                {
                    "client": caller.name,
                    "authenticated": caller.authenticated,
                    "address": caller.address,
                    "in_cluster_networks": in_cluster,
                    "protocol": protocol,
                    "expected": expected,
                    "seen": verdict,
                }
            )
    evidence.record("policy table", {"server": str(server), "policy": policy, "rows": rows})
    assert not failures, (
        f"default policy {policy} on {server}: expected verdicts not seen (CONF-36): "
        + " | ".join(failures)
    )
    if denied["http"]:
        wait_metric(
            server,
            mesh,
            "inbound_http_authz_deny_total",
            http_deny0 + denied["http"],
            srv_name=policy,
            srv_kind="default",
        )
    if denied["tcp"]:
        wait_metric(
            server,
            mesh,
            "inbound_tcp_authz_deny_total",
            tcp_deny0 + denied["tcp"],
            srv_name=policy,
            srv_kind="default",
        )


@pytest.mark.parametrize(("policy", "scope"), CASES, ids=[f"{p}-by-{s}" for p, s in CASES])
@pytest.mark.conformance(
    short_name="policy-default-local",
    description="Each default inbound policy (all-unauthenticated, all-authenticated, "
    "cluster-unauthenticated, cluster-authenticated, deny), set on the namespace or on the "
    "pod, admits exactly the clients it names: meshed and unmeshed clients of the same "
    "cluster, over HTTP (a denial is a 403 counted in inbound_http_authz_deny_total) and "
    "opaque TCP (a denied connection is closed and counted in inbound_tcp_authz_deny_total) "
    "(CONF-36)",
    features=["policy", "default-inbound-policy", "injection", "mtls", "proxy-metrics"],
    profile="mesh",
    conf=["CONF-36"],
)
def test_default_policy_local_clients(
    mesh: Mesh,
    deployed: Deployed,
    policy: str,
    scope: str,
    evidence: Evidence,
    request: pytest.FixtureRequest,
) -> None:
    diagnose(request, deployed.stage)
    d = deployed
    server = d.server(policy, scope)
    callers = [
        (
            Caller(
                "local meshed",
                d.meshed,
                True,
                _pod_ip(mesh, d.cluster, d.clients_ns, d.meshed.pod),
            ),
            ("http", "tcp"),
        ),
        (
            Caller(
                "local unmeshed",
                d.unmeshed,
                False,
                _pod_ip(mesh, d.cluster, d.clients_ns, d.unmeshed.pod),
            ),
            ("http", "tcp"),
        ),
    ]
    _check_table(mesh, server, policy, callers, evidence)


@dataclass
class RemoteCallers:
    unmeshed: Caller
    meshed: Caller


@pytest.fixture(scope="module")
def remote(linked: Linked, deployed: Deployed) -> RemoteCallers:
    """Clients in the other cluster; every server exported in gateway mode."""
    mesh, d = linked.mesh, deployed
    if d.cluster == REMOTE or REMOTE not in mesh.clusters:
        pytest.skip(f"remote clients need a cluster {REMOTE!r} besides {d.cluster!r}")
    for server in d.servers.values():
        linked.export(d.cluster, server.namespace, server.name, "true")
    unmeshed = d.stage.client(REMOTE, d.clients_ns, "unmeshed", meshed=False)
    meshed = d.stage.client(REMOTE, d.clients_ns, "meshed", meshed=True)
    for client in (unmeshed, meshed):
        mesh.kube[REMOTE].wait_pod_ready(client.pod, d.clients_ns)
    for server in d.servers.values():
        mirror(linked, REMOTE, server.namespace, f"{server.name}-{d.cluster}")
    gateway = gateway_pod(linked, d.cluster)
    return RemoteCallers(
        Caller(
            f"{REMOTE} unmeshed (pod to pod)",
            unmeshed,
            False,
            _pod_ip(mesh, REMOTE, d.clients_ns, unmeshed.pod),
        ),
        Caller(
            f"{REMOTE} meshed (through the gateway)",
            meshed,
            True,
            _pod_ip(mesh, d.cluster, MC_NAMESPACE, gateway),
            via_mirror=True,
        ),
    )


@pytest.mark.requires(clusters=2, network="flat")
@pytest.mark.parametrize(("policy", "scope"), CASES, ids=[f"{p}-by-{s}" for p, s in CASES])
@pytest.mark.conformance(
    short_name="policy-default-remote",
    description="Each default inbound policy, set on the namespace or on the pod, treats "
    "clients of another cluster by what the server sees of them: an unmeshed pod calling "
    "the server's pod IP over the flat network (HTTP and opaque TCP) is unauthenticated "
    "from its own address; a meshed pod calling the server's mirror arrives through the "
    "gateway, authenticated as the gateway (CONF-36)",
    features=[
        "policy",
        "default-inbound-policy",
        "injection",
        "mtls",
        "proxy-metrics",
        "multicluster",
        "multicluster-gateway",
    ],
    profile="multicluster",
    conf=["CONF-36"],
)
def test_default_policy_remote_clients(
    mesh: Mesh,
    deployed: Deployed,
    remote: RemoteCallers,
    policy: str,
    scope: str,
    evidence: Evidence,
    request: pytest.FixtureRequest,
) -> None:
    diagnose(request, deployed.stage)
    server = deployed.server(policy, scope)
    callers = [(remote.unmeshed, ("http", "tcp")), (remote.meshed, ("http",))]
    _check_table(mesh, server, policy, callers, evidence)
