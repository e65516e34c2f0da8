"""Helpers of the policy suite: one deployment set per module, clients, probes, policies.

A module builds its workloads once (``Stage``, module-scoped: namespaces created in
every cluster, as namespace sameness wants, and deleted at the end) and its tests
probe them. Probes go through the load client's control API (the API server's pod
proxy): HTTP requests (``/run``) and TCP connections that read the server's hello
line (``/tcp``). Every outcome is reduced to ``allowed`` / ``denied`` / something
else, and assertions converge: the expected outcome ``CONVERGED_AFTER`` times in a
row within ``TIMEOUTS.convergence``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Pod

from fixtures.mesh import Mesh
from fixtures.workloads import CONTROL_PORT, LoadClient
from harness.adapters.promtext import Metrics
from harness.diagnostics import EXTRA_NAMESPACES
from harness.kube import Kube, wait_for
from harness.settings import TIMEOUTS

HERE = Path(__file__).parent
HTTP_PORT = 8080
TCP_PORT = 9000
DEFAULT_POLICY = "config.linkerd.io/default-inbound-policy"
OPAQUE_PORTS = "config.linkerd.io/opaque-ports"
INJECT = "linkerd.io/inject"
#: consecutive identical outcomes that show a policy is in force.
CONVERGED_AFTER = 3
POLICY_API = "policy.linkerd.io"

ALLOWED, DENIED = "allowed", "denied"

# The policy kinds at the versions this suite writes (seed 000's), known to ``Kube.apply``.
for _version, _kind, _plural in (
    ("v1beta1", "Server", "servers"),
    ("v1alpha1", "AuthorizationPolicy", "authorizationpolicies"),
    ("v1alpha1", "MeshTLSAuthentication", "meshtlsauthentications"),
    ("v1alpha1", "NetworkAuthentication", "networkauthentications"),
):
    create_namespaced_resource(POLICY_API, _version, _kind, _plural)


@dataclass
class Stage:
    """A module's namespaces (in every cluster) and what it deployed in them."""

    mesh: Mesh
    prefix: str
    namespaces: list[str] = field(default_factory=list)

    def namespace(self, role: str, annotations: Mapping[str, str] | None = None) -> str:
        """A new namespace ``<prefix>-<role>-<hex>`` in every cluster, marked for injection."""
        name = f"{self.prefix}-{role}-{secrets.token_hex(2)}"[:63].strip("-")
        for k in self.mesh.kube.values():
            k.create_namespace(name, labels={"isthmus.io/test": "true"})
            if name not in self.namespaces:
                self.namespaces.append(name)
            self.mesh.adapter.mesh_namespace(k, name)
            if annotations:
                k.http.patch(
                    f"/api/v1/namespaces/{name}",
                    content=json.dumps({"metadata": {"annotations": dict(annotations)}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                ).raise_for_status()
        return name

    def server(
        self,
        cluster: str,
        namespace: str,
        name: str,
        *,
        account: str = "server",
        annotations: Mapping[str, str] | None = None,
    ) -> PolicyServer:
        """Start a meshed test server (HTTP 8080, opaque TCP 9000) and its Service."""
        k = self.mesh.kube[cluster]
        notes = {OPAQUE_PORTS: str(TCP_PORT), **(annotations or {})}
        k.apply(
            (HERE / "policy-server.yaml").read_text(),
            namespace=namespace,
            name=name,
            account=account,
            cluster=cluster,
            annotations=json.dumps(notes),
        )
        return PolicyServer(cluster, namespace, name, account)

    def client(
        self, cluster: str, namespace: str, name: str, *, account: str = "default", meshed: bool
    ) -> LoadClient:
        """Start a load client pod (meshed or not) under ``account``."""
        k = self.mesh.kube[cluster]
        notes = {} if meshed else {INJECT: "disabled"}
        manifest = (HERE / "policy-client.yaml").read_text()
        if account == "default":
            manifest = manifest.split("---", 1)[1]
        k.apply(
            manifest,
            namespace=namespace,
            name=name,
            account=account,
            cluster=cluster,
            annotations=json.dumps(notes),
        )
        return LoadClient(k, namespace, name)

    def close(self) -> None:
        for k in self.mesh.kube.values():
            for ns in self.namespaces:
                k.delete_namespace(ns, wait=False)
        for k in self.mesh.kube.values():
            for ns in self.namespaces:
                k.delete_namespace(ns, wait=True)


@contextmanager
def stage(mesh: Mesh, prefix: str) -> Iterator[Stage]:
    """A module's stage; everything in it is deleted afterwards (waiting for it)."""
    made = Stage(mesh, prefix)
    try:
        yield made
    finally:
        made.close()


def diagnose(request: pytest.FixtureRequest, made: Stage) -> None:
    """Make a failing test's diagnostics cover the module's namespaces."""
    extra = request.node.stash.setdefault(EXTRA_NAMESPACES, [])
    extra += [ns for ns in made.namespaces if ns not in extra]


@dataclass(frozen=True)
class PolicyServer:
    """A test server pod of the suite."""

    cluster: str
    namespace: str
    name: str
    account: str

    def pod(self, mesh: Mesh) -> Pod:
        return mesh.kube[self.cluster].wait_pod_ready(self.name, self.namespace)

    def ip(self, mesh: Mesh) -> str:
        pod = self.pod(mesh)
        ip = pod.status.podIP if pod.status is not None else None
        assert ip, f"{self} has no pod IP"
        return str(ip)

    def metrics(self, mesh: Mesh) -> Metrics:
        return mesh.metrics(self.cluster, self.namespace, self.name)

    def __str__(self) -> str:
        return f"[{self.cluster}] pod {self.namespace}/{self.name}"


def wait_ready(mesh: Mesh, cluster: str, namespace: str, *names: str) -> None:
    for name in names:
        mesh.kube[cluster].wait_pod_ready(name, namespace)


# -- probes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one probe saw: ``allowed``, ``denied`` or something else (``detail`` says)."""

    verdict: str
    detail: str
    client_id: str | None = None

    def __str__(self) -> str:
        return f"{self.verdict} ({self.detail})"


def http_probe(client: LoadClient, url: str, count: int = 1) -> list[Outcome]:
    """``count`` GETs of ``url``: 200 is allowed, 403 denied (the proxy's refusal)."""
    body = {"url": url, "count": count, "concurrency": 1, "timeout": 3}
    r = client.kube.pod_proxy(client.namespace, client.pod, CONTROL_PORT, "/run", "POST", body)
    assert r.status_code == 200, f"[{client.kube.name}] {client.pod} /run answered {r.text[:300]}"
    outcomes = []
    for record in r.json()["records"]:
        status = record.get("status")
        responder = record.get("responder") or {}
        verdict = {200: ALLOWED, 403: DENIED}.get(status, "other")
        detail = f"HTTP {status}" if status is not None else f"error {record.get('error')}"
        outcomes.append(Outcome(verdict, detail, responder.get("client_id")))
    return outcomes


def tcp_probe(client: LoadClient, address: str) -> Outcome:
    """Connect to ``address``, say ``ping`` and read the hello line: a line is allowed; a
    connection closed before any line is denied (the proxy's refusal of a TCP client).

    The client speaks first so that the proxies' protocol detection ends at once (on
    a silent client it waits its full timeout before treating the bytes as opaque)."""
    r = client.kube.pod_proxy(
        client.namespace, client.pod, CONTROL_PORT, f"/tcp?addr={address}&timeout=5&send=ping"
    )
    assert r.status_code == 200, f"[{client.kube.name}] {client.pod} /tcp answered {r.text[:300]}"
    answer: dict[str, Any] = r.json()
    if answer.get("ok") and answer.get("line"):
        return Outcome(ALLOWED, f"hello {str(answer['line'])[:80]}")
    error = str(answer.get("error") or "")
    verdict = DENIED if error.startswith("EOF") or "reset" in error.lower() else "other"
    return Outcome(verdict, error or "no line")


def converge_to(
    what: str,
    probe: Callable[[], list[Outcome]],
    expected: str,
    timeout: float = TIMEOUTS.convergence,
) -> list[Outcome]:
    """Probe until the last ``CONVERGED_AFTER`` outcomes in a row are all ``expected``."""
    streak: list[Outcome] = []
    seen: list[str] = []

    def attempt() -> list[Outcome] | None:
        for outcome in probe():
            seen.append(str(outcome))
            if outcome.verdict == expected:
                streak.append(outcome)
            else:
                streak.clear()
        del seen[:-6]
        return list(streak) if len(streak) >= CONVERGED_AFTER else None

    return wait_for(
        f"{what}: {CONVERGED_AFTER} x {expected} in a row",
        attempt,
        timeout,
        lambda: "; ".join(seen) or "no outcome",
        interval=0.5,
    )


def wait_metric(
    server: PolicyServer, mesh: Mesh, metric: str, at_least: float, **labels: str
) -> Metrics:
    """The server's proxy metrics once ``metric{labels}`` sums to ``at_least`` or more."""
    seen: list[Metrics] = []

    def reached() -> Metrics | None:
        m = server.metrics(mesh)
        seen[:] = [m]
        return m if m.sum(metric, **labels) >= at_least else None

    return wait_for(
        f"{metric}{labels} >= {at_least:g} on the proxy of {server}",
        reached,
        TIMEOUTS.convergence,
        lambda: seen[0].describe(metric) if seen else "no metrics",
    )


# -- policy resources -------------------------------------------------------------------------


def server_resource(name: str, app: str, port: int | str = HTTP_PORT, **spec: Any) -> str:
    doc = {
        "apiVersion": f"{POLICY_API}/v1beta1",
        "kind": "Server",
        "metadata": {"name": name},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, "port": port, **spec},
    }
    return json.dumps(doc)


def authorization_policy(name: str, server: str, *authentications: tuple[str, str]) -> str:
    doc = {
        "apiVersion": f"{POLICY_API}/v1alpha1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"group": POLICY_API, "kind": "Server", "name": server},
            "requiredAuthenticationRefs": [
                {"group": POLICY_API, "kind": kind, "name": ref} for kind, ref in authentications
            ],
        },
    }
    return json.dumps(doc)


def meshtls_authentication(name: str, *identities: str) -> str:
    doc = {
        "apiVersion": f"{POLICY_API}/v1alpha1",
        "kind": "MeshTLSAuthentication",
        "metadata": {"name": name},
        "spec": {"identities": list(identities)},
    }
    return json.dumps(doc)


def network_authentication(name: str, *networks: Mapping[str, Any]) -> str:
    doc = {
        "apiVersion": f"{POLICY_API}/v1alpha1",
        "kind": "NetworkAuthentication",
        "metadata": {"name": name},
        "spec": {"networks": [dict(n) for n in networks]},
    }
    return json.dumps(doc)


def apply_docs(kube: Kube, namespace: str, *docs: str) -> float:
    """Apply policy documents (JSON) to ``namespace`` in order; the monotonic time the last
    one was accepted."""
    for doc in docs:
        obj = json.loads(doc)
        obj["metadata"]["namespace"] = namespace
        kube.apply(json.dumps(obj))
    return time.monotonic()


def delete_policy(kube: Kube, namespace: str, plural: str, name: str, version: str) -> float:
    """Delete a policy resource; the monotonic time the API accepted the deletion."""
    path = f"/apis/{POLICY_API}/{version}/namespaces/{namespace}/{plural}/{name}"
    r = kube.http.delete(path)
    assert r.status_code in (200, 202, 404), f"[{kube.name}] DELETE {path}: {r.status_code}"
    return time.monotonic()


def events_about(kube: Kube, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    """The Events of ``namespace`` whose involved object is ``kind``/``name``."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    r = kube.http.get(f"/api/v1/namespaces/{namespace}/events", params={"fieldSelector": selector})
    assert r.status_code == 200, f"[{kube.name}] listing events answered {r.status_code}"
    items: list[dict[str, Any]] = r.json().get("items") or []
    return items
