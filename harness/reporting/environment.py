"""The environment fingerprint of a run: what ran where, so two reports can be compared.

Every probe is best effort: one that fails (no git, no session file yet) leaves its
field empty rather than failing the report.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from harness.session import ClusterSession

REPO_ROOT = Path(__file__).resolve().parents[2]
#: seconds a ``git`` probe may take before the commit is reported unknown.
GIT_TIMEOUT = 5.0
#: option names a mesh adapter may be selected with (the first one present wins).
MESH_OPTIONS = ("mesh_adapter", "mesh")


def isthmus_version() -> str:
    try:
        return metadata.version("isthmus")
    except metadata.PackageNotFoundError:
        return "unknown"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_fingerprint() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def implementation(config: pytest.Config) -> dict[str, str]:
    """The mesh under test: the adapter option when there is one, else Isthmus' own mesh."""
    for name in MESH_OPTIONS:
        value = getattr(config.option, name, None)
        if value:
            return {"name": str(value), "version": isthmus_version()}
    return {"name": "isthmus", "version": isthmus_version()}


def topology_of(session: ClusterSession) -> dict[str, Any]:
    t = session.topology
    return {
        "name": t.name,
        "network": t.network,
        "underlay": str(t.underlay),
        "clusters": [
            {
                "name": str(c.name),
                "domain": c.domain,
                "trustDomain": c.trust_domain,
                "podCIDR": str(c.pod_cidr),
                "serviceCIDR": str(c.service_cidr),
                "version": c.version,
                "nodes": c.nodes,
            }
            for c in t.clusters
        ],
    }


def provisioned_clusters(session: ClusterSession) -> list[dict[str, Any]]:
    """What the session file says was provisioned (empty when nothing was)."""
    try:
        data = session.provisioned() or {}
    except (OSError, ValueError):
        return []
    clusters = data.get("clusters")
    if not isinstance(clusters, list):
        return []
    return [
        {
            "name": c.get("name"),
            "apiServer": c.get("api_server"),
            "nodeIPs": c.get("node_ips"),
            "version": c.get("version"),
        }
        for c in clusters
        if isinstance(c, dict)
    ]


def fingerprint(config: pytest.Config, session: ClusterSession | None) -> dict[str, Any]:
    """Provider, topology, Kubernetes versions, Python, host kernel, git commit, versions."""
    env: dict[str, Any] = {
        "isthmusVersion": isthmus_version(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pytest": pytest.__version__,
        "host": {
            "system": platform.system(),
            "kernel": platform.release(),
            "machine": platform.machine(),
        },
        "git": git_fingerprint(),
        "xdistWorkers": getattr(config.option, "numprocesses", None),
    }
    if session is not None:
        topology = topology_of(session)
        provisioned = provisioned_clusters(session)
        versions = {c["version"] for c in provisioned if c.get("version")} or {
            c["version"] for c in topology["clusters"]
        }
        env |= {
            "provider": session.provider_name,
            "topology": topology,
            "clusters": provisioned,
            "kubernetesVersions": sorted(versions),
        }
    return env
