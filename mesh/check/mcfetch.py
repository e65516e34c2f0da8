"""Reading the source cluster (and, with each Link's credentials, its target) for ``check
--multicluster``: the only part of it that does I/O.

It goes through the ``multicluster`` commands' Kubernetes seam (``Cluster``),
so tests fake both clusters. The target is reached exactly as the Link's mirror
controller reaches it: with the kubeconfig in the Link's credentials Secret.
A failure to read this cluster is the snapshot's ``error``; a failure to reach a
target is that link's ``remote_error``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from mesh.check.multicluster import LinkState, MirrorState, MulticlusterSnapshot
from mesh.check.snapshot import DeploymentState
from mesh.crds import LINK_CRD
from mesh.install.controlplane import TRUST_ROOTS_CONFIG_MAP
from mesh.multicluster import labels as mc
from mesh.multicluster.cli import kube
from mesh.multicluster.cli.gateways import read_probe

__all__ = ["fetch_multicluster"]

Connect = Callable[[Mapping[str, Any]], kube.Cluster]
_BUNDLE_KEY = "ca-bundle.crt"


def _anchors(config_map: kube.Manifest | None) -> bytes | None:
    if config_map is None:
        return None
    text = (config_map.get("data") or {}).get(_BUNDLE_KEY)
    return text.encode() if text else None


def _kubeconfig(secret: kube.Manifest | None) -> dict[str, Any] | None:
    if secret is None:
        return None
    data = (secret.get("data") or {}).get(mc.CREDENTIALS_KEY)
    if not data:
        return None
    try:
        loaded = yaml.safe_load(base64.b64decode(data))
    except (ValueError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _remote(connect: Connect, kubeconfig: Mapping[str, Any], target_ns: str) -> dict[str, Any]:
    """``remote_error``, ``remote_anchors`` and ``remote_anchors_error`` of a link."""
    try:
        remote = connect(kubeconfig)
    except kube.ClusterError as e:
        return {"remote_error": str(e)}
    try:
        try:
            remote.get(kube.NAMESPACE, target_ns)
        except kube.ClusterError as e:
            return {"remote_error": str(e)}
        try:
            roots = remote.get(kube.CONFIG_MAP, TRUST_ROOTS_CONFIG_MAP, target_ns)
        except kube.ClusterError as e:
            return {"remote_anchors_error": f"({e})"}
        if roots is None:
            return {"remote_anchors_error": f"({target_ns}/{TRUST_ROOTS_CONFIG_MAP} is missing)"}
        return {"remote_anchors": _anchors(roots)}
    finally:
        remote.close()


def _mirrors(cluster: kube.Cluster, target: str) -> dict[str, MirrorState]:
    selector = f"{mc.CLUSTER_NAME}={target},{mc.MIRRORED_SERVICE}=true"
    ready: dict[str, int] = {}
    for endpoints in cluster.list(kube.ENDPOINTS, selector=selector):
        meta = endpoints["metadata"]
        ready[f"{meta['namespace']}/{meta['name']}"] = sum(
            len(subset.get("addresses") or []) for subset in endpoints.get("subsets") or []
        )
    mirrors = {}
    for service in cluster.list(kube.SERVICE, selector=selector):
        meta = service["metadata"]
        if mc.REMOTE_DISCOVERY in (meta.get("labels") or {}):
            continue  # pod-to-pod mirrors have no Endpoints by design
        key = f"{meta['namespace']}/{meta['name']}"
        mirrors[key] = MirrorState(key in ready, ready.get(key, 0))
    return mirrors


def _link_state(
    cluster: kube.Cluster, connect: Connect, namespace: str, link: kube.Manifest
) -> LinkState:
    name = str(link["metadata"]["name"])
    spec = link.get("spec") or {}
    target = str(spec.get("targetClusterName") or name)
    secret_name = spec.get("clusterCredentialsSecret") or mc.credentials_secret_name(name)
    kubeconfig = _kubeconfig(cluster.get(kube.SECRET, secret_name, namespace))
    deploy = cluster.get(kube.DEPLOYMENT, mc.service_mirror_name(name), namespace)
    controller = None
    if deploy is not None:
        replicas = (deploy.get("spec") or {}).get("replicas")
        ready = (deploy.get("status") or {}).get("readyReplicas") or 0
        controller = DeploymentState(1 if replicas is None else int(replicas), int(ready))
    gateway = bool(spec.get("gatewayAddress"))
    alive: bool | None = None
    why = ""
    if gateway:
        state, why = read_probe(cluster, namespace, target)
        alive = None if state is None else state.alive
    remote: dict[str, Any] = {}
    if kubeconfig is not None:
        remote = _remote(
            connect, kubeconfig, str(spec.get("targetClusterLinkerdNamespace") or "linkerd")
        )
    return LinkState(
        name=name,
        target=target,
        gateway=gateway,
        credentials=kubeconfig is not None,
        controller=controller,
        gateway_alive=alive,
        gateway_error=why,
        mirrors=_mirrors(cluster, target) if gateway else {},
        **remote,
    )


def fetch_multicluster(
    cluster: kube.Cluster,
    connect: Connect,
    *,
    control_plane_ns: str,
    namespace: str = mc.NAMESPACE,
) -> MulticlusterSnapshot:
    """Read what ``check --multicluster`` judges."""
    try:
        crd = cluster.get(kube.CRD, LINK_CRD)
        roots = cluster.get(kube.CONFIG_MAP, TRUST_ROOTS_CONFIG_MAP, control_plane_ns)
        if crd is None:
            return MulticlusterSnapshot(None, _anchors(roots))
        versions = tuple(str(v["name"]) for v in crd["spec"]["versions"] if v.get("served", False))
        links = sorted(cluster.list(kube.LINK, namespace), key=lambda i: str(i["metadata"]["name"]))
        states = tuple(_link_state(cluster, connect, namespace, link) for link in links)
    except kube.ClusterError as e:
        return MulticlusterSnapshot(error=str(e))
    return MulticlusterSnapshot(versions, _anchors(roots), states)
