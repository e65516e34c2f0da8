"""The kubeconfig in a Link's credentials Secret, read strictly.

Rules: ``multicluster link`` writes one cluster, one user with a bearer token and one
context; ``parse_kubeconfig`` takes the current context (or the only one) and returns
its API server address, CA and token. Anything else - not YAML, no such context, a
server that is not an https URL, a CA that is not PEM (inline data only: files do not
travel in a Secret), no token - raises ``KubeconfigError`` saying what is wrong. The
token is never part of a message.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = ["KubeconfigError", "RemoteCluster", "parse_kubeconfig"]


class KubeconfigError(ValueError):
    """A kubeconfig the mirror controller cannot use; the message says why."""


@dataclass(frozen=True)
class RemoteCluster:
    """How to reach the target's API server."""

    server: str
    ca_pem: str
    token: str = field(repr=False)

    def kubeconfig(self) -> dict[str, Any]:
        """A one-context kubeconfig for this cluster (for lightkube's ``KubeConfig.from_dict``)."""
        ca = base64.b64encode(self.ca_pem.encode()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "remote",
                    "cluster": {"server": self.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "remote", "user": {"token": self.token}}],
            "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "remote"}}],
            "current-context": "remote",
        }


def _named(doc: Mapping[str, Any], section: str, name: str, inner: str) -> Mapping[str, Any]:
    entries = doc.get(section)
    if not isinstance(entries, list):
        raise KubeconfigError(f"kubeconfig has no {section} list")
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            body = entry.get(inner)
            if not isinstance(body, Mapping):
                raise KubeconfigError(f"{section[:-1]} {name!r} has no {inner} map")
            return body
    raise KubeconfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _ca_pem(cluster: Mapping[str, Any], name: str) -> str:
    data = cluster.get("certificate-authority-data")
    if not isinstance(data, str) or not data.strip():
        if cluster.get("certificate-authority"):
            raise KubeconfigError(
                f"cluster {name!r} names a CA file; a credentials Secret needs "
                "certificate-authority-data"
            )
        raise KubeconfigError(f"cluster {name!r} has no certificate-authority-data")
    try:
        pem = base64.b64decode(data.strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise KubeconfigError(
            f"cluster {name!r}: certificate-authority-data is not base64 PEM"
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in pem or "-----END CERTIFICATE-----" not in pem:
        raise KubeconfigError(
            f"cluster {name!r}: certificate-authority-data holds no PEM certificate"
        )
    return pem


def parse_kubeconfig(text: str) -> RemoteCluster:
    """The API server, CA and token of ``text``'s current context."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig is not YAML: {e}") from None
    if not isinstance(doc, Mapping):
        raise KubeconfigError("kubeconfig is not a YAML map")
    current = doc.get("current-context")
    if not current:
        contexts = doc.get("contexts")
        if isinstance(contexts, list) and len(contexts) == 1 and isinstance(contexts[0], Mapping):
            current = contexts[0].get("name")
    if not isinstance(current, str) or not current:
        raise KubeconfigError("kubeconfig has no current-context (and not exactly one context)")
    context = _named(doc, "contexts", current, "context")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not isinstance(cluster_name, str) or not isinstance(user_name, str):
        raise KubeconfigError(f"context {current!r} must name a cluster and a user")
    cluster = _named(doc, "clusters", cluster_name, "cluster")
    user = _named(doc, "users", user_name, "user")
    server = cluster.get("server")
    if not isinstance(server, str):
        raise KubeconfigError(f"cluster {cluster_name!r} has no server")
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        raise KubeconfigError(f"cluster {cluster_name!r}: server {server!r} is not an https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise KubeconfigError(
            f"cluster {cluster_name!r}: server {server!r} has a bad port"
        ) from None
    token = user.get("token")
    if not isinstance(token, str) or not token.strip():
        raise KubeconfigError(f"user {user_name!r} has no bearer token")
    return RemoteCluster(
        server=server.rstrip("/"), ca_pem=_ca_pem(cluster, cluster_name), token=token.strip()
    )
