"""Reading a cluster for ``viz``: pods, Services, TrafficSplits and the proxies' metrics.

The only part of ``viz stat|authz|edges`` that does I/O. Rules:
- Everything goes through the API server with the kubeconfig's credentials:
  object lists as raw JSON, and each proxy's ``/metrics`` through the pod proxy
  (``pods/<pod>:4191/proxy/metrics``); nothing is installed in the cluster.
- A pod is scraped when it runs a ``linkerd-proxy`` container and has an IP;
  a pod whose scrape fails is reported on stderr by the caller and left out,
  never counted as zero traffic.
- ``PrometheusSource`` answers the same questions from a Prometheus' HTTP API
  (instant queries at the window's two ends) instead of scraping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube.config.client_adapter import Client as RawClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SingleConfig

from mesh.k8s.annotations import PROXY_CONTAINER
from mesh.multicluster.labels import CLUSTER_NAME
from mesh.viz.scrape import PodScrape, Sample, Workload, parse_samples, split_by_pod
from mesh.viz.stat import ServiceInfo, SplitInfo

__all__ = [
    "ADMIN_PORT",
    "ClusterReader",
    "PrometheusSource",
    "ScrapeError",
    "ScrapeSource",
]

ADMIN_PORT = 4191
"""The proxy's admin port, serving ``/metrics``."""
_TIMEOUT = 10.0
"""Seconds one API request (a list, or one pod's scrape) may take."""
_PARALLEL = 8
"""Scrapes in flight at once."""
_TEMPLATE_HASH = "pod-template-hash"
_SPLIT_VERSIONS = ("v1alpha2", "v1alpha1")
PROMETHEUS_METRICS = (
    "response_total",
    "response_latency_ms_bucket",
    "tcp_open_connections",
    "tcp_open_total",
    "tcp_read_bytes_total",
    "tcp_write_bytes_total",
    "inbound_http_authz_deny_total",
)
"""The series viz reads when it asks a Prometheus."""


class ScrapeError(RuntimeError):
    """The API server (or Prometheus) could not be read; the message says what failed."""


@dataclass(frozen=True)
class PodInfo:
    workload: Workload
    ip: str


def _owners(pod: Mapping[str, Any]) -> dict[str, str]:
    meta = pod.get("metadata", {})
    owners: dict[str, str] = {}
    template_hash = meta.get("labels", {}).get(_TEMPLATE_HASH, "")
    for ref in meta.get("ownerReferences", []) or []:
        if not ref.get("controller"):
            continue
        kind, name = str(ref.get("kind", "")).lower(), str(ref.get("name", ""))
        owners[kind] = name
        if kind == "replicaset" and template_hash and name.endswith(f"-{template_hash}"):
            owners["deployment"] = name.removesuffix(f"-{template_hash}")
    return owners


def _identity(pod: Mapping[str, Any]) -> str | None:
    """The identity the pod's proxy holds (its env, with the pod's fields filled in)."""
    spec = pod.get("spec", {})
    for container in spec.get("containers", []):
        if container.get("name") != PROXY_CONTAINER:
            continue
        for env in container.get("env", []) or []:
            if env.get("name") == "LINKERD2_PROXY_IDENTITY_LOCAL_NAME" and env.get("value"):
                meta = pod.get("metadata", {})
                value = str(env["value"])
                value = value.replace("$(_pod_sa)", spec.get("serviceAccountName", "default"))
                return value.replace("$(_pod_ns)", meta.get("namespace", ""))
        return ""  # meshed, identity unknown
    return None


def pod_info(pod: Mapping[str, Any], cluster: str = "") -> PodInfo:
    """What viz needs of one Pod object."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    workload = Workload(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        owners=_owners(pod),
        service_account=spec.get("serviceAccountName", "default"),
        identity=_identity(pod),
        cluster=cluster,
    )
    return PodInfo(workload, pod.get("status", {}).get("podIP") or "")


class ClusterReader:
    """Lists objects and scrapes proxies through one cluster's API server."""

    def __init__(self, config: SingleConfig, cluster: str = "") -> None:
        self.config = config
        self.cluster = cluster

    def _raw(self) -> httpx2.Client:
        return RawClient(self.config, ConnectionParams(timeout=httpx2.Timeout(_TIMEOUT)))

    def _get(self, raw: httpx2.Client, path: str, missing_ok: bool = False) -> Any:
        try:
            response = raw.get(path)
        except httpx2.HTTPError as e:
            raise ScrapeError(f"cannot reach the API server for {path}: {e}") from e
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ScrapeError(f"GET {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def _list(self, raw: httpx2.Client, group_path: str, plural: str, namespace: str | None) -> Any:
        where = f"/namespaces/{namespace}" if namespace else ""
        return self._get(raw, f"{group_path}{where}/{plural}", missing_ok=True)

    def get(self, path: str) -> Any:
        """The JSON object at ``path``; ``ScrapeError`` naming it when it cannot be read."""
        with self._raw() as raw:
            return self._get(raw, path)

    def raw_pods(self, namespaces: Iterable[str] | None) -> list[dict[str, Any]]:
        """The running Pod objects of ``namespaces`` (None: every namespace)."""
        with self._raw() as raw:
            items: list[dict[str, Any]] = []
            for ns in namespaces if namespaces is not None else [None]:
                items += (self._list(raw, "/api/v1", "pods", ns) or {}).get("items", [])
        return [p for p in items if p.get("status", {}).get("phase") == "Running"]

    def pods(self, namespaces: Iterable[str] | None) -> list[PodInfo]:
        """The running pods of ``namespaces`` (None: every namespace)."""
        return [pod_info(p, self.cluster) for p in self.raw_pods(namespaces)]

    def services(self, namespace: str | None) -> list[ServiceInfo]:
        with self._raw() as raw:
            found = self._list(raw, "/api/v1", "services", namespace) or {}
        return [
            ServiceInfo(
                s["metadata"].get("namespace", ""),
                s["metadata"].get("name", ""),
                s["metadata"].get("labels", {}).get(CLUSTER_NAME, ""),
            )
            for s in found.get("items", [])
        ]

    def splits(self, namespace: str | None) -> list[SplitInfo]:
        """TrafficSplits (split.smi-spec.io, the newest version served)."""
        with self._raw() as raw:
            for version in _SPLIT_VERSIONS:
                found = self._list(
                    raw, f"/apis/split.smi-spec.io/{version}", "trafficsplits", namespace
                )
                if found is not None:
                    return [_split(item) for item in found.get("items", [])]
        return []

    def scrape(self, pods: Sequence[PodInfo]) -> tuple[list[PodScrape], list[str]]:
        """Each meshed pod's metrics now; and a message for each pod that failed."""
        meshed = [p for p in pods if p.workload.meshed and p.ip]
        errors: list[str] = []

        def one(raw: httpx2.Client, pod: PodInfo) -> PodScrape | None:
            w = pod.workload
            path = f"/api/v1/namespaces/{w.namespace}/pods/{w.name}:{ADMIN_PORT}/proxy/metrics"
            try:
                response = raw.get(path)
                at = time.monotonic()
                if response.status_code != 200:
                    errors.append(f"{w.namespace}/{w.name}: HTTP {response.status_code}")
                    return None
                samples = parse_samples(response.text, f"{w.namespace}/{w.name}")
            except (httpx2.HTTPError, ValueError) as e:
                errors.append(f"{w.namespace}/{w.name}: {e}")
                return None
            return PodScrape(w, at, samples)

        with self._raw() as raw, ThreadPoolExecutor(_PARALLEL) as pool:
            results = list(pool.map(lambda p: one(raw, p), meshed))
        return [r for r in results if r is not None], errors


def _split(item: Mapping[str, Any]) -> SplitInfo:
    spec = item.get("spec", {})
    backends = tuple(
        (str(b.get("service", "")), str(b.get("weight", "")))
        for b in spec.get("backends", []) or []
    )
    meta = item.get("metadata", {})
    return SplitInfo(
        meta.get("namespace", ""), meta.get("name", ""), spec.get("service", ""), backends
    )


class ScrapeSource:
    """Two scrapes ``window`` seconds apart, straight from the proxies."""

    def __init__(self, reader: ClusterReader) -> None:
        self.reader = reader

    def window(
        self,
        pods: Sequence[PodInfo],
        seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        started: Callable[[int], None] | None = None,
    ) -> tuple[list[PodScrape], list[PodScrape], list[str]]:
        """Scrape, wait ``seconds`` (the window itself), scrape again.

        ``started`` is told how many proxies the first scrape read, once it is done.
        """
        before, errors = self.reader.scrape(pods)
        if started is not None:
            started(len(before))
        sleep(seconds)
        after, more = self.reader.scrape(pods)
        return before, after, errors + more


class PrometheusSource:
    """The same two snapshots, read from a Prometheus' HTTP API (``/api/v1/query``)."""

    def __init__(self, url: str, client: httpx2.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = client or httpx2.Client(timeout=_TIMEOUT)

    def _query(self, metric: str, at: float) -> list[Sample]:
        try:
            response = self.client.get(
                f"{self.url}/api/v1/query", params={"query": metric, "time": f"{at:.3f}"}
            )
        except httpx2.HTTPError as e:
            raise ScrapeError(f"cannot reach Prometheus at {self.url}: {e}") from e
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if response.status_code != 200 or body.get("status") != "success":
            raise ScrapeError(
                f"Prometheus query {metric!r} failed: HTTP {response.status_code} "
                f"{body.get('error', response.text[:200])}"
            )
        samples = []
        for series in body.get("data", {}).get("result", []):
            labels = dict(series.get("metric", {}))
            name = labels.pop("__name__", metric)
            samples.append(Sample(name, labels, float(series["value"][1])))
        return samples

    def snapshot(self, pods: Sequence[PodInfo], at: float) -> list[PodScrape]:
        known = {(p.workload.namespace, p.workload.name): p.workload for p in pods}
        samples = [s for metric in PROMETHEUS_METRICS for s in self._query(metric, at)]
        return [
            PodScrape(known[key], at, tuple(found))
            for key, found in split_by_pod(samples).items()
            if key in known
        ]

    def window(
        self,
        pods: Sequence[PodInfo],
        seconds: float,
        now: float | None = None,
        started: Callable[[int], None] | None = None,
    ) -> tuple[list[PodScrape], list[PodScrape], list[str]]:
        end = time.time() if now is None else now
        return self.snapshot(pods, end - seconds), self.snapshot(pods, end), []
