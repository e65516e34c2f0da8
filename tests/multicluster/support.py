"""A fake of the multicluster commands' Kubernetes seam, and clusters made of our manifests."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh.install import Values
from mesh.install.controlplane import CONFIG_MAP, TRUST_ROOTS_CONFIG_MAP
from mesh.install.target import KubeTarget
from mesh.multicluster import labels as mc
from mesh.multicluster.cli import kube
from mesh.multicluster.render import install_objects
from mesh.multicluster.values import McValues

Manifest = dict[str, Any]

KINDS = kube.KINDS
TOKEN = "remote-access-token"
CA_PEM = b"-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"
GATEWAY_IP = "172.30.25.10"


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    for requirement in filter(None, selector.split(",")):
        key, _, value = requirement.partition("=")
        if labels.get(key) != value:
            return False
    return True


@dataclass
class FakeCluster:
    """Objects by (kind, namespace, name); fails loudly on anything it was not given."""

    server: str = "https://10.0.0.1:6443"
    objects: dict[tuple[str, str, str], Manifest] = field(default_factory=dict)
    metrics: dict[tuple[str, str], str] = field(default_factory=dict)
    """(namespace, pod) -> what /metrics on 9999 returns."""
    error: kube.ClusterError | None = None
    closed: bool = False
    reads: list[tuple[str, str]] = field(default_factory=list)
    """(resource plural, verb) of every request, to hold callers to an account's RBAC."""

    def add(self, *docs: Manifest) -> FakeCluster:
        for doc in docs:
            kind = KINDS[doc["kind"]]
            ns = doc["metadata"].get("namespace", "") if kind.namespaced else ""
            self.objects[(doc["kind"], ns, doc["metadata"]["name"])] = copy.deepcopy(doc)
        return self

    def remove(self, kind: str, namespace: str, name: str) -> None:
        del self.objects[(kind, namespace, name)]

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def get(self, kind: kube.Kind, name: str, namespace: str | None = None) -> Manifest | None:
        self._check()
        self.reads.append((kind.plural, "get"))
        found = self.objects.get((kind.kind, (namespace or "") if kind.namespaced else "", name))
        return copy.deepcopy(found) if found else None

    def list(
        self, kind: kube.Kind, namespace: str | None = None, selector: str = ""
    ) -> list[Manifest]:
        self._check()
        if (
            kind is kube.LINK
            and ("CustomResourceDefinition", "", "links.multicluster.linkerd.io")
            not in self.objects
        ):
            raise kube.ClusterError("links.multicluster.linkerd.io/v1alpha3 is not served", 404)
        return [
            copy.deepcopy(obj)
            for (k, ns, _), obj in sorted(self.objects.items())
            if k == kind.kind
            and (not namespace or ns == namespace)
            and _matches(obj["metadata"].get("labels") or {}, selector)
        ]

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        self._check()
        assert (port, path) == (mc.MIRROR_METRICS_PORT, "/metrics"), (port, path)
        if (namespace, pod) not in self.metrics:
            raise kube.ClusterError(f"pod {namespace}/{pod} has no metrics", 503)
        return self.metrics[(namespace, pod)]

    def close(self) -> None:
        self.closed = True


@dataclass
class Connector:
    """Stands in for ``kube.connect``: the cluster of each context, and kubeconfigs seen."""

    clusters: dict[str | None, FakeCluster]
    remote: FakeCluster | kube.ClusterError | None = None
    """What connecting with a generated kubeconfig gives (the link's API check)."""
    kubeconfigs: list[Mapping[str, Any]] = field(default_factory=list)

    def __call__(self, where: KubeTarget | Mapping[str, Any]) -> kube.Cluster:
        if isinstance(where, KubeTarget):
            if where.context not in self.clusters:
                raise kube.ClusterError(f"no context {where.context!r}")
            return self.clusters[where.context]
        self.kubeconfigs.append(where)
        if isinstance(self.remote, kube.ClusterError):
            raise self.remote
        assert self.remote is not None, "unexpected connection with a generated kubeconfig"
        return self.remote


def use(monkeypatch: pytest.MonkeyPatch, connector: Connector) -> Connector:
    monkeypatch.setattr(kube, "connect", connector)
    return connector


def control_plane(values: Values | None = None, anchors: str = "ANCHOR") -> list[Manifest]:
    values = values or Values(image_tag="dev")
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": values.control_plane_ns},
            "data": {"values": yaml.safe_dump(values.to_config())},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": TRUST_ROOTS_CONFIG_MAP, "namespace": values.control_plane_ns},
            "data": {"ca-bundle.crt": anchors},
        },
    ]


def installed(
    values: McValues | None = None,
    *,
    ingress: Iterable[Mapping[str, str]] = ({"ip": GATEWAY_IP},),
    token: str | None = TOKEN,
    token_ca: bytes = b"",
    server: str = "https://10.0.0.1:6443",
    cp_values: Values | None = None,
) -> FakeCluster:
    """A cluster with the control plane's config and ``multicluster install`` applied,
    the gateway's LoadBalancer assigned and the token controller done."""
    values = values or McValues(image_tag="dev")
    cluster = FakeCluster(server=server).add(*control_plane(cp_values), *install_objects(values))
    gateway = cluster.objects.get(("Service", mc.NAMESPACE, mc.GATEWAY_NAME))
    if gateway is not None:
        gateway["status"] = {"loadBalancer": {"ingress": [dict(i) for i in ingress]}}
    secret = cluster.objects[("Secret", mc.NAMESPACE, mc.token_secret_name(mc.REMOTE_ACCESS_SA))]
    if token is not None:
        secret["data"] = {
            "token": base64.b64encode(token.encode()).decode(),
            "ca.crt": base64.b64encode(token_ca).decode(),
        }
    return cluster


def write_kubeconfig(path: Path, contexts: Mapping[str, str], *, with_ca: bool = True) -> Path:
    """A kubeconfig with one context per ``name -> server``, CAs inline (if ``with_ca``)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    **(
                        {"certificate-authority-data": base64.b64encode(CA_PEM).decode()}
                        if with_ca
                        else {"insecure-skip-tls-verify": True}
                    ),
                },
            }
            for name, server in contexts.items()
        ],
        "users": [{"name": "admin", "user": {"token": "admin-token"}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": "admin"}} for name in contexts
        ],
        "current-context": next(iter(contexts)),
    }
    path.write_text(yaml.safe_dump(config))
    return path


def decode_kubeconfig(secret: Manifest) -> Manifest:
    data = base64.b64decode(secret["data"][mc.CREDENTIALS_KEY])
    loaded: Manifest = yaml.safe_load(data)
    return loaded
