"""Kube access for the harness: a typed client per cluster plus raw API calls (pod proxy).

Every wait here takes its timeout from ``harness.settings.TIMEOUTS`` and, on expiry,
raises ``WaitTimeout`` saying what was expected and what was last seen.
"""

from __future__ import annotations

import base64
import json
import ssl
import string
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import httpx2
import yaml
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.codecs import AnyResource
from lightkube.core.resource import NamespacedResource, Resource
from lightkube.generic_resource import Generic, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod, ServiceAccount

from harness.providers.base import Cluster
from harness.settings import TIMEOUTS

T = TypeVar("T")
#: Untyped: the API sends ``endpoints: null`` for a Service without endpoints, which the
#: typed model refuses.
RawEndpointSlice = create_namespaced_resource(
    "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"
)
FIELD_MANAGER = "isthmus-harness"


class WaitTimeout(AssertionError):
    """A named wait expired; the message says what was expected and what was seen."""


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    seen: Callable[[], str] | None = None,
    interval: float = 0.25,
) -> T:
    """Poll ``check`` until it returns a non-None value; raise WaitTimeout after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = check()
            if result is not None:
                return result
        except (ApiError, httpx.HTTPError, httpx2.HTTPError) as e:
            last_error = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            observed = seen() if seen else last_error or "nothing"
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for {what}; last seen: {observed}"
            )
        time.sleep(interval)


def _tls_from_kubeconfig(path: Path, context: str) -> tuple[str, ssl.SSLContext, dict[str, str]]:
    """The server URL, an SSL context and auth headers for ``context`` of a kubeconfig."""
    cfg = yaml.safe_load(path.read_text())
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == context)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])

    with tempfile.TemporaryDirectory(prefix="isthmus-kube-") as tmp:
        # Inline *-data is written out only while the context loads it.
        def materialise(field: str) -> str | None:
            data = user.get(f"{field}-data") or cluster.get(f"{field}-data")
            if data:
                out = Path(tmp) / f"{field}.pem"
                out.write_bytes(base64.b64decode(data))
                return str(out)
            value = user.get(field) or cluster.get(field)
            return str(value) if value else None

        tls = ssl.create_default_context(cafile=materialise("certificate-authority"))
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        cert, key = materialise("client-certificate"), materialise("client-key")
        if cert and key:
            tls.load_cert_chain(cert, key)
    headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
    return str(cluster["server"]), tls, headers


def manifest_objects(text: str, namespace: str | None = None) -> list[AnyResource]:
    """The objects of a YAML manifest, namespaced ones without a namespace put in ``namespace``."""
    objects: list[AnyResource] = []
    for obj in codecs.load_all_yaml(text):
        if namespace and isinstance(obj, NamespacedResource):
            if isinstance(obj, Generic):
                # a generic resource's ``metadata`` is a fresh copy: write the dict itself
                obj.setdefault("metadata", {}).setdefault("namespace", namespace)
            elif obj.metadata:
                obj.metadata.namespace = obj.metadata.namespace or namespace
        objects.append(obj)
    return objects


@dataclass
class Kube:
    """One cluster's API: ``client`` (typed, lightkube) and ``http`` (raw, for proxies)."""

    cluster: Cluster
    client: Client
    http: httpx.Client

    @classmethod
    def connect(cls, cluster: Cluster) -> Kube:
        config = KubeConfig.from_file(cluster.kubeconfig)
        client = Client(config.get(context_name=cluster.context), field_manager=FIELD_MANAGER)
        server, tls, headers = _tls_from_kubeconfig(cluster.kubeconfig, cluster.context)
        http = httpx.Client(
            base_url=server, verify=tls, headers=headers, timeout=TIMEOUTS.http_call
        )
        return cls(cluster, client, http)

    def close(self) -> None:
        self.http.close()
        self.client.close()

    @property
    def name(self) -> str:
        return self.cluster.name

    # -- objects ----------------------------------------------------------------------------

    def apply(self, manifest: str, namespace: str | None = None, **params: Any) -> list[Resource]:
        """Apply every object of a YAML manifest (``$name`` placeholders filled by ``params``)."""
        text = string.Template(manifest).substitute(params) if params else manifest
        return [self.client.apply(obj, force=True) for obj in manifest_objects(text, namespace)]

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        from lightkube.models.meta_v1 import ObjectMeta

        self.client.create(Namespace(metadata=ObjectMeta(name=name, labels=labels or {})))
        wait_for(
            f"[{self.name}] default ServiceAccount in namespace {name}",
            lambda: self.client.get(ServiceAccount, "default", namespace=name),
            TIMEOUTS.namespace_ready,
        )

    def delete_namespace(self, name: str, wait: bool = True) -> None:
        try:
            self.client.delete(Namespace, name)
        except ApiError as e:
            if e.status.code != 404:
                raise
        if wait:

            def gone() -> bool | None:
                try:
                    ns = self.client.get(Namespace, name)
                except ApiError as e:
                    if e.status.code == 404:
                        return True
                    raise
                del ns
                return None

            def seen() -> str:
                pods = [
                    p.metadata.name for p in self.client.list(Pod, namespace=name) if p.metadata
                ]
                return f"namespace still present; pods left: {pods}"

            wait_for(
                f"[{self.name}] namespace {name} deleted", gone, TIMEOUTS.namespace_deleted, seen
            )

    def wait_deployment_ready(
        self, name: str, namespace: str, timeout: float | None = None
    ) -> Deployment:
        def ready() -> Deployment | None:
            d = self.client.get(Deployment, name, namespace=namespace)
            want = d.spec.replicas if d.spec and d.spec.replicas is not None else 1
            st = d.status
            if st and (st.readyReplicas or 0) == want and (st.updatedReplicas or 0) == want:
                return d
            return None

        return wait_for(
            f"[{self.name}] deployment {namespace}/{name} ready",
            ready,
            timeout or TIMEOUTS.deployment_ready,
            lambda: self.describe_pods(namespace),
        )

    def wait_pod_ready(self, name: str, namespace: str, timeout: float | None = None) -> Pod:
        def ready() -> Pod | None:
            pod = self.client.get(Pod, name, namespace=namespace)
            conds = pod.status.conditions if pod.status else None
            ok = any(c.type == "Ready" and c.status == "True" for c in conds or [])
            return pod if ok else None

        return wait_for(
            f"[{self.name}] pod {namespace}/{name} Ready",
            ready,
            timeout or TIMEOUTS.deployment_ready,
            lambda: self.describe_pods(namespace),
        )

    def pods(self, namespace: str, selector: dict[str, str] | None = None) -> list[Pod]:
        labels: dict[str, Any] = dict(selector or {})
        return list(self.client.list(Pod, namespace=namespace, labels=labels))

    def describe_pods(self, namespace: str) -> str:
        out = []
        for p in self.pods(namespace):
            st = p.status
            waiting = (
                [
                    f"{c.name}:{c.state.waiting.reason}"
                    for c in (st.containerStatuses or [])
                    if c.state and c.state.waiting
                ]
                if st
                else []
            )
            name = p.metadata.name if p.metadata else "?"
            out.append(
                f"{name} phase={st.phase if st else None} ip={st.podIP if st else None} "
                f"waiting={waiting}"
            )
        return "; ".join(out) or f"no pods in {namespace}"

    def endpoint_addresses(self, service: str, namespace: str) -> set[str]:
        slices = self.client.list(
            RawEndpointSlice, namespace=namespace, labels={"kubernetes.io/service-name": service}
        )
        return {
            a
            for s in slices
            for e in (s.get("endpoints") or [])
            if (e.get("conditions") or {}).get("ready") is not False
            for a in e.get("addresses", [])
        }

    # -- raw calls --------------------------------------------------------------------------

    def pod_proxy(
        self,
        namespace: str,
        pod: str,
        port: int,
        path: str,
        method: str = "GET",
        body: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Call ``path`` on ``pod:port`` through the API server's pod proxy."""
        url = f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}"
        content = json.dumps(body) if body is not None else None
        return self.http.request(
            method,
            url,
            content=content,
            headers={"Content-Type": "application/json"} if content else {},
            timeout=timeout or TIMEOUTS.http_call,
        )


def connect_all(clusters: Iterable[Cluster]) -> dict[str, Kube]:
    return {c.name: Kube.connect(c) for c in clusters}
