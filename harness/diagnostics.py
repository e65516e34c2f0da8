"""Diagnostics bundles: what a failed test's namespaces looked like in every cluster.

For each cluster and namespace the bundle holds pods (YAML), events (by time), services,
endpoints, endpointslices, multicluster Links (with their status) where the cluster
serves them, and container logs (mirror controllers' included when the test's
diagnostics cover ``linkerd-multicluster``). Logs come through the API; on the netns provider a
log the API cannot serve is read from the kubelet stand-in's files instead.

Rules: every API call has a short timeout and the whole bundle a time budget; collection
never raises — what could not be collected is written to ``errors.txt`` in the bundle.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import yaml

from harness.providers.base import Cluster


@dataclass(frozen=True)
class Limits:
    """Bounds of one bundle; override with ``ISTHMUS_DIAGNOSTICS_<NAME>`` (upper case)."""

    #: seconds one API call may take.
    call_timeout: float = 5
    #: seconds the whole bundle may take; later calls are skipped and noted.
    budget: float = 60
    #: lines of each container log asked from the API.
    log_tail_lines: int = 5000
    #: bytes kept from the end of each kubelet log file.
    log_file_bytes: int = 1_000_000

    @classmethod
    def from_env(cls) -> Limits:
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = os.environ.get(f"ISTHMUS_DIAGNOSTICS_{f.name.upper()}")
            if env:
                values[f.name] = type(getattr(cls, f.name))(float(env))
        return cls(**values)


LIMITS = Limits.from_env()
#: more namespaces a failed test's bundle covers (e.g. the mesh's), added by fixtures.
EXTRA_NAMESPACES = pytest.StashKey[list[str]]()
COLLECTIONS = {
    "pods": "/api/v1/namespaces/{ns}/pods",
    "events": "/api/v1/namespaces/{ns}/events",
    "services": "/api/v1/namespaces/{ns}/services",
    "endpointslices": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
    "endpoints": "/api/v1/namespaces/{ns}/endpoints",
}
#: collections a cluster may not serve (a CRD not installed): a 404 is no error.
OPTIONAL_COLLECTIONS = {
    "links": "/apis/multicluster.linkerd.io/v1alpha3/namespaces/{ns}/links",
}


class KubeLike(Protocol):
    """What collection needs of a ``harness.kube.Kube``: its cluster and raw API client."""

    cluster: Cluster
    http: httpx.Client


class _OutOfTime(Exception):
    pass


class _NotServed(Exception):
    """An optional collection the cluster does not serve (its CRD is not installed)."""


def bundle_name(nodeid: str) -> str:
    """A directory name for test ``nodeid``: readable, filesystem-safe and unique."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_.")[:100]
    return f"{readable}-{hashlib.sha256(nodeid.encode()).hexdigest()[:8]}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "_"


@dataclass
class _Collector:
    dest: Path
    limits: Limits
    deadline: float
    errors: list[str]

    def call(self, k: KubeLike, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime(f"time budget of {self.limits.budget:g}s spent")
        r = k.http.get(path, params=params, timeout=min(self.limits.call_timeout, left))
        if r.status_code != 200:
            raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:300]}")
        return r

    def items(self, k: KubeLike, kind: str, ns: str) -> list[dict[str, Any]]:
        if kind in OPTIONAL_COLLECTIONS:
            path = OPTIONAL_COLLECTIONS[kind].format(ns=ns)
            left = self.deadline - time.monotonic()
            if left > 0:
                probe = k.http.get(path, timeout=min(self.limits.call_timeout, left))
                if probe.status_code == 404:
                    raise _NotServed(path)
        else:
            path = COLLECTIONS[kind].format(ns=ns)
        items: list[dict[str, Any]] = self.call(k, path).json()["items"]
        for obj in items:
            obj.get("metadata", {}).pop("managedFields", None)
        return items

    def namespace(self, k: KubeLike, ns: str) -> None:
        where = self.dest / _safe(k.cluster.name) / _safe(ns)
        where.mkdir(parents=True, exist_ok=True)
        pods: list[dict[str, Any]] = []
        for kind in COLLECTIONS:
            try:
                items = self.items(k, kind, ns)
            except Exception as e:
                self.errors.append(f"[{k.cluster.name}/{ns}] {kind}: {type(e).__name__}: {e}")
                continue
            if kind == "events":
                items.sort(key=_event_time)
                (where / "events.txt").write_text("".join(_event_line(e) for e in items))
            if kind == "pods":
                pods = items
            (where / f"{kind}.yaml").write_text(yaml.safe_dump(items, sort_keys=False))
        for kind in OPTIONAL_COLLECTIONS:
            try:
                items = self.items(k, kind, ns)
            except _NotServed:
                continue
            except Exception as e:
                self.errors.append(f"[{k.cluster.name}/{ns}] {kind}: {type(e).__name__}: {e}")
                continue
            if items:
                (where / f"{kind}.yaml").write_text(yaml.safe_dump(items, sort_keys=False))
        for pod in pods:
            self.pod_logs(k, ns, pod, where / "logs")

    def pod_logs(self, k: KubeLike, ns: str, pod: dict[str, Any], where: Path) -> None:
        meta, spec = pod.get("metadata", {}), pod.get("spec", {})
        name, uid = str(meta.get("name", "?")), str(meta.get("uid", ""))
        containers = [
            c["name"] for c in spec.get("initContainers", []) + spec.get("containers", [])
        ]
        status = pod.get("status", {})
        restarts = {
            str(cs.get("name")): int(cs.get("restartCount") or 0)
            for cs in status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
        }
        for container in containers:
            out = where / _safe(name) / f"{_safe(container)}.log"
            out.parent.mkdir(parents=True, exist_ok=True)
            path = f"/api/v1/namespaces/{ns}/pods/{name}/log"
            params = {"container": container, "tailLines": self.limits.log_tail_lines}
            try:
                out.write_text(self.call(k, path, params).text)
                if restarts.get(container):
                    previous = self.call(k, path, {**params, "previous": "true"}).text
                    out.with_suffix(".previous.log").write_text(previous)
                continue
            except Exception as e:
                api_error = f"{type(e).__name__}: {e}"
                if out.exists():
                    self.errors.append(
                        f"[{k.cluster.name}/{ns}] previous log of {name}/{container}: {api_error}"
                    )
                    continue
            files = kubelet_log_files(k.cluster, uid, container)
            if files:
                out.write_text("".join(_tail(f, self.limits.log_file_bytes) for f in files))
            else:
                self.errors.append(
                    f"[{k.cluster.name}/{ns}] logs of {name}/{container}: {api_error}; "
                    "no kubelet log files found"
                )


def kubelet_log_files(cluster: Cluster, uid: str, container: str) -> list[Path]:
    """The netns kubelet stand-in's log files of one container, oldest start first."""
    roots = set()
    if cluster.extra.get("state_dir"):
        roots.add(Path(cluster.extra["state_dir"]) / cluster.name)
    if cluster.extra.get("logs"):
        roots.add(Path(cluster.extra["logs"]).parent)
    if not uid:
        return []
    found = {f for root in roots for f in root.glob(f"kubelet-*/pods/{uid}/logs/{container}/*.log")}
    return sorted(found, key=lambda f: (int(f.stem) if f.stem.isdigit() else -1, str(f)))


def _tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError as e:
        return f"# {path}: {e}\n"
    cut = f" (last {limit} of {size} bytes)" if size > limit else ""
    return f"# kubelet log file {path}{cut}\n{data.decode('utf-8', errors='replace')}"


def _event_time(event: Mapping[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or event.get("metadata", {}).get("creationTimestamp")
        or ""
    )


def _event_line(event: Mapping[str, Any]) -> str:
    obj = event.get("involvedObject", {})
    return (
        f"{_event_time(event)}  {event.get('type', '')}  {event.get('reason', '')}  "
        f"{obj.get('kind', '')}/{obj.get('name', '')}  x{event.get('count') or 1}  "
        f"{event.get('message', '')}\n"
    )


def collect(
    kubes: Mapping[str, KubeLike],
    namespaces: Sequence[str],
    dest: Path,
    *,
    test_id: str,
    phase: str,
    limits: Limits = LIMITS,
) -> Path:
    """Write a bundle for ``namespaces`` in every cluster of ``kubes`` under ``dest``."""
    errors: list[str] = []
    started = time.monotonic()
    collector = _Collector(dest, limits, started + limits.budget, errors)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for k in kubes.values():
            for ns in namespaces:
                try:
                    collector.namespace(k, ns)
                except Exception as e:
                    errors.append(f"[{k.cluster.name}/{ns}] {type(e).__name__}: {e}")
    except Exception:
        errors.append(traceback.format_exc())
    readme = [
        f"test: {test_id}",
        f"failed in: {phase}",
        f"collected: {datetime.now(UTC).isoformat(timespec='seconds')} "
        f"in {time.monotonic() - started:.1f}s",
        f"clusters: {', '.join(kubes)}",
        f"namespaces: {', '.join(namespaces)}",
        f"errors: {len(errors)} (see errors.txt)" if errors else "errors: none",
    ]
    try:
        (dest / "README.txt").write_text("\n".join(readme) + "\n")
        if errors:
            (dest / "errors.txt").write_text("\n".join(errors) + "\n")
    except OSError:
        pass
    return dest
