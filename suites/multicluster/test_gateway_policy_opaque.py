"""The gateway beyond plain HTTP: the gateway port's Server policy and opaque TCP through it.

Two behaviours of the gateway issue 6 left open:

- a ``Server`` selecting the gateway's port (4143, ``linkerd-proxy``) is honoured: the
  test applies the Server and AuthorizationPolicy Linkerd's multicluster extension
  ships for its gateway (any meshed identity, any network, so concurrent tests keep
  their gateway) and shows the gateway's proxy authorizing requests under it by name;
  denial is covered by the proxy's scenario tests (a policy that denies here would
  stop every other test using the gateway);
- a Service whose port is marked opaque (``config.linkerd.io/opaque-ports``) is
  reached through a gateway-mode mirror with opaque TCP: the target's server speaks
  first (a JSON hello line naming its pod and cluster) and the meshed source client
  reads it through the mirror, the gateway splicing the stream after reading which
  service it is for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import Workloads
from harness.kubectl import Kubectl
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import converge
from suites.multicluster._support import eventually, gateway_pod, mirror

SOURCE, TARGET = "source", "target"
GATEWAY_SA = "linkerd-gateway"
OPAQUE_PORT = 9000
HELLO_TIMEOUT = 50.0
"""Seconds the client waits for the hello line: the source proxy treats a client that
sends nothing as opaque only after its detection timeout (10 s), then connects."""

GATEWAY_POLICY = """\
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: linkerd-gateway, namespace: linkerd-multicluster}
spec:
  podSelector: {matchLabels: {app: linkerd-gateway}}
  port: linkerd-proxy
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: any-meshed, namespace: linkerd-multicluster}
spec:
  identities: ["*"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: source-cluster, namespace: linkerd-multicluster}
spec:
  networks: [{cidr: 0.0.0.0/0}, {cidr: "::/0"}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: linkerd-gateway, namespace: linkerd-multicluster}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: linkerd-gateway}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: any-meshed}
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: source-cluster}
"""

OPAQUE_SERVER = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
  annotations: {{config.linkerd.io/opaque-ports: "{port}"}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: server
    image: isthmus/testapps:dev
    args: ["server", "--port", "8080", "--tcp-port", "{port}"]
    env:
    - {{name: CLUSTER_NAME, value: "{cluster}"}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    readinessProbe:
      tcpSocket: {{port: {port}}}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {{app: {name}, mirror.linkerd.io/exported: "true"}}
  annotations: {{config.linkerd.io/opaque-ports: "{port}"}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: tcp-hello, port: {port}, targetPort: {port}, protocol: TCP}}
"""


def _kubectl(k: Kubectl, *args: str, stdin: str | None = None) -> str:
    done = k.run(*args, timeout=TIMEOUTS.http_call, stdin=stdin.encode() if stdin else None)
    assert done.returncode == 0, (
        f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-800:]}"
    )
    return done.stdout.decode()


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-gateway-server-policy",
    description="A Server selecting the gateway's port (linkerd-proxy, 4143) with an "
    "AuthorizationPolicy is honoured by the gateway: requests crossing it are authorized "
    "under that Server and policy by name, over mTLS from the meshed source client",
    features=["multicluster", "multicluster-gateway", "injection", "proxy-metrics"],
    profile="multicluster",
    conf=["CONF-19"],
)
def test_the_gateway_honours_a_server_selecting_its_port(
    linked: Linked,
    mc_namespace: str,
    workloads: Workloads,
    kubectl: dict[str, Kubectl],
    evidence: Evidence,
) -> None:
    ns = mc_namespace
    k = kubectl[TARGET]
    with evidence.step("deploy and export a server in the target; a meshed client in the source"):
        workloads.server(TARGET, name="server", replicas=1)
        linked.export(TARGET, ns, "server", "true")
        mirror(linked, SOURCE, ns, "server-target")
        client = workloads.client(SOURCE)
    url = f"http://server-target.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"
    gateway_id = linked.mesh.identity(TARGET, MC_NAMESPACE, GATEWAY_SA)
    client_id = linked.mesh.identity(SOURCE, ns, "default")
    gateway = gateway_pod(linked, TARGET)
    labels = {"srv_name": "linkerd-gateway", "authz_name": "linkerd-gateway"}
    with evidence.step("apply the gateway's Server and AuthorizationPolicy"):
        _kubectl(k, "apply", "-f", "-", stdin=GATEWAY_POLICY)
    try:
        with evidence.step("requests through the gateway are authorized under the Server"):
            converge(client, url)

            def authorized() -> dict[str, Any]:
                result = client.run(url, 5, label=f"{SOURCE}/{client.pod} -> {url}")
                codes = {str(r["status"]) for r in result["records"]}
                assert codes == {"200"}, f"expected 200 through the gateway; saw {codes}"
                m = linked.mesh.metrics(TARGET, MC_NAMESPACE, gateway)
                allowed = m.sum("inbound_http_authz_allow_total", srv_kind="server", **labels)
                assert allowed > 0, (
                    "expected the gateway to authorize requests under Server/"
                    "AuthorizationPolicy linkerd-gateway; "
                    + m.describe("inbound_http_authz_allow_total")
                )
                return {
                    "allowed": m.describe("inbound_http_authz_allow_total", **labels),
                    "from_client": m.sum(
                        "inbound_http_authz_allow_total", client_id=client_id, **labels
                    ),
                }

            seen = eventually("the gateway authorizing under its Server", authorized)
        evidence.record("gateway_authz", seen)
        assert seen["from_client"] > 0, (
            f"expected authorizations of the client {client_id} at gateway {gateway_id}; "
            f"{seen['allowed']}"
        )
    finally:
        _kubectl(k, "delete", "--ignore-not-found", "-f", "-", stdin=GATEWAY_POLICY)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-gateway-opaque-tcp",
    description="A target Service whose port is marked opaque (config.linkerd.io/"
    "opaque-ports) and exported in gateway mode is reached as opaque TCP through its "
    "mirror: a meshed source client reads the target server's own first line (it speaks "
    "first), the connection crossing the target's gateway over mTLS (CONF-19, CONF-33)",
    features=["multicluster", "multicluster-gateway", "injection", "mtls", "proxy-metrics"],
    profile="multicluster",
    conf=["CONF-19", "CONF-33"],
)
def test_an_opaque_service_is_reached_through_the_gateway(
    linked: Linked,
    mc_namespace: str,
    workloads: Workloads,
    evidence: Evidence,
) -> None:
    ns = mc_namespace
    target = linked.kube[TARGET]
    name = "opaque"
    with evidence.step("an opaque server in the target, exported; a meshed client in the source"):
        target.apply(
            OPAQUE_SERVER.format(name=name, port=OPAQUE_PORT, cluster=TARGET), namespace=ns
        )
        target.wait_pod_ready(name, ns)
        mirrored = mirror(linked, SOURCE, ns, f"{name}-target")
        client = workloads.client(SOURCE)
    annotations = (mirrored.get("metadata") or {}).get("annotations") or {}
    assert annotations.get("config.linkerd.io/opaque-ports") == str(OPAQUE_PORT), (
        f"expected the mirror to keep the opaque-ports annotation; it has {annotations}"
    )
    addr = f"{name}-target.{ns}.svc.{linked.clusters[SOURCE].domain}:{OPAQUE_PORT}"
    gateway_id = linked.mesh.identity(TARGET, MC_NAMESPACE, GATEWAY_SA)

    def hello() -> dict[str, Any]:
        answer = client._call(
            f"/tcp?addr={addr}&timeout={HELLO_TIMEOUT:g}", timeout=HELLO_TIMEOUT + 10
        )
        assert answer.get("ok"), f"no hello line from {addr}: {answer}"
        line: dict[str, Any] = json.loads(answer["line"])
        return line

    with evidence.step(f"read the server's hello through {addr}"):
        line = eventually(f"a hello line from {addr}", hello, TIMEOUTS.mirror_sync + 60)
    evidence.record("hello", line)
    assert (line.get("cluster"), line.get("pod")) == (TARGET, name), (
        f"expected the hello of {TARGET}/{name}; got {line}"
    )
    gateway = linked.mesh.metrics(TARGET, MC_NAMESPACE, gateway_pod(linked, TARGET))
    client_side = linked.mesh.metrics(SOURCE, ns, client.pod)
    evidence.record(
        "metrics",
        {
            "client_tcp": client_side.describe("tcp_open_total", direction="outbound"),
            "gateway_tcp": gateway.describe("tcp_open_total"),
        },
    )
    assert client_side.sum("tcp_open_total", peer="dst", tls="true", server_id=gateway_id) > 0, (
        "CONF-33: expected the client's proxy to open mTLS TCP connections to the gateway "
        f"{gateway_id}; {client_side.describe('tcp_open_total', direction='outbound')}"
    )
    assert gateway.sum("tcp_open_total", direction="outbound", peer="dst", tls="true") > 0, (
        "CONF-19: expected the gateway to open mTLS TCP connections to the target; "
        f"{gateway.describe('tcp_open_total')}"
    )
