"""Strict parsing of the kubeconfig in a link secret: how to reach a remote cluster's API.

A link secret's kubeconfig comes from another cluster (``multicluster link``
output applied by whoever holds it), so it is untrusted input. ``parse_kubeconfig``
returns a ``RemoteCluster`` (server URL, CA certificates as PEM, bearer token) or
raises ``KubeconfigError`` saying what is wrong; it never raises anything else and
never acts on the file's contents. Rules:

- YAML (or JSON), at most ``MAX_SIZE`` bytes, a mapping with ``clusters``,
  ``users`` and ``contexts`` lists of named entries;
- the context is ``current-context``, or the only one when there is exactly one;
- the cluster's ``server`` is an ``https://`` URL with a host; its CA is inline
  (``certificate-authority-data``: base64 of PEM certificates that parse);
  ``insecure-skip-tls-verify`` and a CA *file* are refused (a link must verify
  the remote API and carry everything it needs);
- the user has an inline ``token``; ``exec``, ``auth-provider``, token files
  and client certificate files are refused (they would run commands or read
  local files of the controller).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509

__all__ = ["MAX_SIZE", "KubeconfigError", "RemoteCluster", "parse_kubeconfig"]

MAX_SIZE = 1024 * 1024
"""The largest kubeconfig accepted, in bytes (a real one is a few KiB)."""

_REFUSED_USER_FIELDS = {
    "exec": "runs a command",
    "auth-provider": "runs an auth plugin",
    "tokenFile": "reads a local file",
    "client-certificate": "reads a local file",
    "client-key": "reads a local file",
    "username": "uses basic auth",
    "password": "uses basic auth",
}


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message says why."""


@dataclass(frozen=True)
class RemoteCluster:
    """Where a remote cluster's API is and how to authenticate to it."""

    server: str
    """The API server URL (``https://host[:port][/path]``)."""
    ca_pem: str
    """The CA certificates that sign the API server's certificate, PEM."""
    token: str = field(repr=False)
    """The bearer token of the link's service account (never in a repr or message)."""
    context: str = ""
    """The kubeconfig context these came from (for messages)."""

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


def parse_kubeconfig(text: str) -> RemoteCluster:
    """The remote cluster a link secret's kubeconfig describes (see the module rules).

    Raises ``KubeconfigError`` for anything unusable.
    """
    if not isinstance(text, str):
        raise KubeconfigError(f"expected the kubeconfig as text, got {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SIZE:
        raise KubeconfigError(f"the kubeconfig is larger than {MAX_SIZE} bytes")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise KubeconfigError(f"not valid YAML: {_first_line(e)}") from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise KubeconfigError(f"not usable YAML: {type(e).__name__}") from None
    config = _mapping(doc, "the kubeconfig")
    contexts = _named(config, "contexts", "context")
    context_name = _context_name(config, contexts)
    context = _mapping(contexts[context_name], f"context {context_name!r}")
    cluster_name = _text(context.get("cluster"), f"context {context_name!r} cluster")
    user_name = _text(context.get("user"), f"context {context_name!r} user")
    clusters = _named(config, "clusters", "cluster")
    users = _named(config, "users", "user")
    if cluster_name not in clusters:
        raise KubeconfigError(f"context {context_name!r} names cluster {cluster_name!r}, absent")
    if user_name not in users:
        raise KubeconfigError(f"context {context_name!r} names user {user_name!r}, absent")
    cluster = _mapping(clusters[cluster_name], f"cluster {cluster_name!r}")
    user = _mapping(users[user_name], f"user {user_name!r}")
    return RemoteCluster(
        server=_server(cluster, cluster_name),
        ca_pem=_ca(cluster, cluster_name),
        token=_token(user, user_name),
        context=context_name,
    )


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KubeconfigError(f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise KubeconfigError(f"{what} must be a non-empty string")
    return value


def _named(config: dict[str, Any], key: str, item: str) -> dict[str, object]:
    """``config[key]``: a list of ``{name, <item>}`` entries, as name -> entry body."""
    entries = config.get(key)
    if not isinstance(entries, list) or not entries:
        raise KubeconfigError(f"{key} must be a non-empty list")
    out: dict[str, object] = {}
    for n, entry in enumerate(entries):
        entry = _mapping(entry, f"{key}[{n}]")
        name = _text(entry.get("name"), f"{key}[{n}].name")
        if name in out:
            raise KubeconfigError(f"{key} has two entries named {name!r}")
        out[name] = entry.get(item)
    return out


def _context_name(config: dict[str, Any], contexts: dict[str, object]) -> str:
    current = config.get("current-context")
    if current is None or current == "":
        if len(contexts) != 1:
            raise KubeconfigError(
                f"no current-context, and {len(contexts)} contexts to choose from"
            )
        return next(iter(contexts))
    name = _text(current, "current-context")
    if name not in contexts:
        raise KubeconfigError(f"current-context {name!r} is not among the contexts")
    return name


def _server(cluster: dict[str, Any], name: str) -> str:
    server = _text(cluster.get("server"), f"cluster {name!r} server")
    try:
        url = urlsplit(server)
        host = url.hostname
        url.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise KubeconfigError(f"cluster {name!r} server {server!r} is not a URL: {e}") from None
    if url.scheme != "https" or not host:
        raise KubeconfigError(f"cluster {name!r} server must be an https:// URL, got {server!r}")
    if any(c.isspace() for c in server):
        raise KubeconfigError(f"cluster {name!r} server {server!r} contains whitespace")
    return server


def _ca(cluster: dict[str, Any], name: str) -> str:
    if cluster.get("insecure-skip-tls-verify") not in (None, False):
        raise KubeconfigError(f"cluster {name!r} skips TLS verification; a link must verify")
    if cluster.get("certificate-authority") is not None:
        raise KubeconfigError(f"cluster {name!r} names a CA file; the CA must be inline")
    data = _text(cluster.get("certificate-authority-data"), f"cluster {name!r} CA data")
    try:
        pem = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"cluster {name!r} CA data is not base64") from None
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise KubeconfigError(f"cluster {name!r} CA data is not PEM certificates") from None
    if not certificates:
        raise KubeconfigError(f"cluster {name!r} CA data holds no certificate")
    return pem.decode("ascii")


def _token(user: dict[str, Any], name: str) -> str:
    for key, why in _REFUSED_USER_FIELDS.items():
        if user.get(key) is not None:
            raise KubeconfigError(f"user {name!r} {why} ({key}); a link needs an inline token")
    token = _text(user.get("token"), f"user {name!r} token")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise KubeconfigError(f"user {name!r} token contains whitespace or control characters")
    return token
