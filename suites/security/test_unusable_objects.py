"""SEC-4 on real clusters: objects a controller cannot use are skipped, said so, and survived.

One test feeds every controller of the mesh objects the API server admits but the
controller cannot use, then shows each one kept going:

- policy (Server, ServerAuthorization, NetworkAuthentication; MeshTLSAuthentication and
  AuthorizationPolicy have no admitted form it cannot use, their CRDs require what it
  reads): each unusable object gets a Warning Event ``UnusableObject`` naming it and a
  log line of the policy container naming it;
- the service-mirror controller: an exported ExternalName Service in the target (it
  cannot be mirrored) gets a Warning Event on the Link naming it;
- the proxy injector: a pod with an unparsable proxy annotation is admitted uninjected
  with an admission warning saying why (the injector never refuses a pod);
- destination: odd but valid Services and EndpointSlices (ExternalName, a garbage
  ``opaque-ports`` annotation, an FQDN slice of no Service) are taken in its stride.

Then, with the garbage still present, every controller still does its job with objects
made afterwards (so none stopped watching): a new meshed server and client talk mTLS
(injector, identity, destination), a new Server and AuthorizationPolicy authorize the
client by name (policy), and a Service exported afterwards is mirrored (mirror); and no
control-plane or mirror container restarted.
"""

from __future__ import annotations

from typing import Any

import pytest
from lightkube.resources.core_v1 import Event, Pod

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import Workloads
from harness.kube import Kube
from harness.kubectl import Kubectl
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import converge
from suites.multicluster._support import eventually, mirror

SOURCE, TARGET = "source", "target"
CONTROL_NS = "linkerd"
UNUSABLE = "UnusableObject"
POLICY_CONTAINER = "policy"

POLICY_GARBAGE = """\
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: bad-port}
spec: {podSelector: {matchLabels: {app: nothing}}, port: 70000}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: no-selector}
spec: {port: 8080}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: bad-cidr}
spec: {networks: [{cidr: not-a-cidr}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: no-networks}
spec: {networks: []}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: bad-client}
spec: {server: {name: bad-port}, client: {networks: [{cidr: "999.1.1.1/8"}]}}
"""
POLICY_UNUSABLE = {
    "bad-port": "Server",
    "no-selector": "Server",
    "bad-cidr": "NetworkAuthentication",
    "no-networks": "NetworkAuthentication",
    "bad-client": "ServerAuthorization",
}

ODD_SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: odd-external}
spec: {type: ExternalName, externalName: example.invalid}
---
apiVersion: v1
kind: Service
metadata:
  name: odd-annotated
  annotations: {config.linkerd.io/opaque-ports: "nope,99999,-3"}
spec:
  selector: {app: nothing}
  ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: odd-fqdn}
addressType: FQDN
endpoints: [{addresses: [example.invalid]}]
ports: [{name: http, port: 8080}]
"""

EXPORTED_EXTERNAL = """\
apiVersion: v1
kind: Service
metadata:
  name: odd-external
  labels: {mirror.linkerd.io/exported: "true"}
spec: {type: ExternalName, externalName: example.invalid}
"""

BAD_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: odd-pod
  annotations: {config.linkerd.io/default-inbound-policy: open-sesame}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: pause, image: isthmus/isthmus:dev, args: [component, pause]}
"""

SERVER_POLICY = """\
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: server-http}
spec: {podSelector: {matchLabels: {app: server}}, port: http}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: the-client}
spec: {identities: ["$client_id"]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: server-http-client}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: server-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: the-client}
"""


def _kubectl(k: Kubectl, namespace: str, manifest: str) -> str:
    """``kubectl apply`` of ``manifest`` in ``namespace``; what it printed (warnings too)."""
    done = k.run(
        "-n", namespace, "apply", "-f", "-", timeout=TIMEOUTS.http_call, stdin=manifest.encode()
    )
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, f"kubectl apply in {namespace} exited {done.returncode}: {out}"
    return out


def _restarts(kube: Kube, namespace: str) -> dict[str, int]:
    """Restart count of every container of the pods in ``namespace`` (``pod/container``)."""
    counts: dict[str, int] = {}
    for pod in kube.pods(namespace):
        assert pod.metadata is not None
        for status in (pod.status.containerStatuses if pod.status else None) or []:
            counts[f"{pod.metadata.name}/{status.name}"] = status.restartCount
    return counts


def _control_plane(linked: Linked) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cluster in (SOURCE, TARGET):
        for where, n in _restarts(linked.kube[cluster], CONTROL_NS).items():
            counts[f"{cluster}:{where}"] = n
    for where, n in _restarts(linked.kube[SOURCE], MC_NAMESPACE).items():
        if "service-mirror" in where:
            counts[f"{SOURCE}:{where}"] = n
    return counts


def _events(kube: Kube, namespace: str) -> list[Event]:
    return list(kube.client.list(Event, namespace=namespace))


def _policy_logs(kube: Kube) -> str:
    (pod,) = kube.pods(CONTROL_NS, {"linkerd.io/control-plane-component": "destination"})[:1]
    name = pod.metadata.name if pod.metadata else None
    assert name is not None, f"a destination pod without a name: {pod}"
    lines = kube.client.log(name, namespace=CONTROL_NS, container=POLICY_CONTAINER, tail_lines=2000)
    return "\n".join(lines)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="sec-unusable-objects",
    description="Objects the API admits but a controller cannot use (policy resources with "
    "bad ports, CIDRs or no selector; an exported ExternalName Service; a pod with an "
    "unparsable proxy annotation; odd Services and EndpointSlices) are skipped with a "
    "Warning Event and a log line naming them (the injector: an admission warning), and "
    "afterwards destination, policy, identity, the injector and the mirror controller all "
    "still act on new objects, with no container restarted (SEC-4)",
    features=["multicluster", "multicluster-gateway", "injection", "mtls", "proxy-metrics"],
    profile="multicluster",
    conf=["SEC-4"],
)
def test_unusable_objects_are_skipped_reported_and_survived(
    linked: Linked,
    mc_namespace: str,
    workloads: Workloads,
    kubectl: dict[str, Kubectl],
    evidence: Evidence,
) -> None:
    ns = mc_namespace
    source = linked.kube[SOURCE]
    before = _control_plane(linked)
    evidence.record("restarts_before", before)

    with evidence.step("feed every controller objects it cannot use"):
        _kubectl(kubectl[SOURCE], ns, POLICY_GARBAGE)
        _kubectl(kubectl[SOURCE], ns, ODD_SERVICES)
        _kubectl(kubectl[TARGET], ns, EXPORTED_EXTERNAL)
        admitted = _kubectl(kubectl[SOURCE], ns, BAD_POD)
    evidence.record("bad_pod_admission", admitted)

    with evidence.step("the injector admitted the odd pod uninjected, saying why"):
        odd = source.client.get(Pod, "odd-pod", namespace=ns)
        names = [c.name for c in (odd.spec.containers if odd.spec else [])]
        assert "linkerd-proxy" not in names, f"expected odd-pod uninjected; containers {names}"
        assert all(word in admitted for word in ("did not inject", "open-sesame")), (
            f"expected an admission warning naming the bad annotation; kubectl said: {admitted}"
        )

    def policy_reported() -> dict[str, str]:
        found = {
            e.involvedObject.name: e.message or ""
            for e in _events(source, ns)
            if e.reason == UNUSABLE and e.involvedObject.name in POLICY_UNUSABLE
        }
        missing = sorted(set(POLICY_UNUSABLE) - set(found))
        assert not missing, f"no {UNUSABLE} Event yet for {missing}; have {sorted(found)}"
        return found

    with evidence.step("policy: an Event and a log line per unusable object"):
        reported = eventually("UnusableObject Events for the policy garbage", policy_reported)
        evidence.record("policy_events", reported)
        logs = _policy_logs(source)
        for name, kind in POLICY_UNUSABLE.items():
            assert f"{kind} {ns}/{name}" in logs, (
                f"expected the policy container to log {kind} {ns}/{name}; "
                f"its log has {logs.count(ns)} lines about {ns}"
            )

    def mirror_reported() -> str:
        for e in _events(source, MC_NAMESPACE):
            if e.type == "Warning" and f"{ns}/odd-external" in (e.message or ""):
                return f"{e.reason}: {e.message}"
        raise AssertionError(f"no Warning Event on the Link naming {ns}/odd-external yet")

    with evidence.step("mirror: a Warning Event on the Link naming the unmirrorable Service"):
        evidence.record("mirror_event", eventually("the mirror's Warning", mirror_reported))

    with evidence.step("afterwards: new workloads are injected, get identities and talk mTLS"):
        workloads.server(SOURCE, name="server", replicas=1)
        client = workloads.client(SOURCE)
        url = f"http://server.{ns}.svc.{linked.clusters[SOURCE].domain}:8080/"
        converge(client, url)
        client_id = linked.mesh.identity(SOURCE, ns, "default")
        result = client.run(url, 5, label=f"{client.pod} -> {url}")
        ids = {(r["responder"] or {}).get("client_id") for r in result["records"]}
        assert ids == {client_id}, f"expected the server to see {client_id} over mTLS; saw {ids}"

    with evidence.step("afterwards: a new Server and AuthorizationPolicy are enforced"):
        _kubectl(kubectl[SOURCE], ns, SERVER_POLICY.replace("$client_id", client_id))
        (server_pod,) = [p.metadata.name for p in source.pods(ns, {"app": "server"}) if p.metadata]

        def authorized() -> float:
            client.run(url, 3, label=f"{client.pod} -> {url} under server-http")
            m = linked.mesh.metrics(SOURCE, ns, str(server_pod))
            n = m.sum("inbound_http_authz_allow_total", srv_name="server-http")
            assert n > 0, m.describe("inbound_http_authz_allow_total")
            return n

        evidence.record("authorized", eventually("requests authorized by server-http", authorized))

    with evidence.step("afterwards: a Service exported now is mirrored"):
        workloads.server(TARGET, name="after", replicas=1)
        linked.export(TARGET, ns, "after", "true")
        mirror(linked, SOURCE, ns, "after-target")

    after = _control_plane(linked)
    evidence.record("restarts_after", after)
    restarted: dict[str, Any] = {
        k: (before.get(k), n) for k, n in after.items() if k in before and n != before[k]
    }
    assert not restarted, f"SEC-4: containers restarted while fed unusable objects: {restarted}"
    gone = sorted(set(before) - set(after))
    assert not gone, f"SEC-4: control-plane containers disappeared: {gone}"
