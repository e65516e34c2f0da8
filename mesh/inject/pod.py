"""Adding the proxy to a pod: the one mutation both the webhook and ``inject --manual`` make.

``inject_pod`` takes a pod-shaped mapping (a Pod, or a workload's pod
template: ``metadata`` + ``spec``), the annotations in force for it, and the
mesh's ``InjectConfig``; it returns the injected pod and the JSON Patch that
turns the input into it. It adds, and never changes what is there:

- init container ``linkerd-init`` (first, so later init containers are already
  redirected), which sets the pod's iptables redirection;
- container ``linkerd-proxy`` (first), with the environment of ``proxyenv``
  (gateway mode when annotated ``config.linkerd.io/enable-gateway: "true"``);
- volumes for the identity token and the in-memory identity directory;
- annotations ``linkerd.io/proxy-version``, ``linkerd.io/identity-mode``,
  ``linkerd.io/created-by``, ``linkerd.io/trust-root-sha256``; labels
  ``linkerd.io/control-plane-ns``, ``linkerd.io/workload-ns`` and
  ``linkerd.io/proxy-<kind>`` naming the owning workload when known.

A pod that already has ``linkerd-proxy`` comes back unchanged with no patch,
so injecting twice is injecting once. Pure: no I/O, inputs are not modified.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from mesh.inject import jsonpatch
from mesh.inject.config import InjectConfig
from mesh.inject.proxyenv import (
    IDENTITY_DIR,
    TOKEN_AUDIENCE,
    TOKEN_DIR,
    TOKEN_FILE,
    PodSettings,
    proxy_env,
)
from mesh.install.values import DEFAULT_INBOUND_POLICIES, Values
from mesh.k8s.annotations import PROXY_CONTAINER, parse_ports
from mesh.multicluster.labels import ENABLE_GATEWAY

__all__ = [
    "DEFAULT_INBOUND_POLICY",
    "INIT_CONTAINER",
    "OWNER_LABELS",
    "PROXY_LOG_LEVEL",
    "SKIP_INBOUND_PORTS",
    "SKIP_OUTBOUND_PORTS",
    "InjectError",
    "inject_pod",
    "is_injected",
    "pod_settings",
]

Pod = dict[str, Any]

INIT_CONTAINER = "linkerd-init"
OPAQUE_PORTS = "config.linkerd.io/opaque-ports"
SKIP_INBOUND_PORTS = "config.linkerd.io/skip-inbound-ports"
SKIP_OUTBOUND_PORTS = "config.linkerd.io/skip-outbound-ports"
DEFAULT_INBOUND_POLICY = "config.linkerd.io/default-inbound-policy"
PROXY_LOG_LEVEL = "config.linkerd.io/proxy-log-level"

OWNER_LABELS = {
    "Deployment": "linkerd.io/proxy-deployment",
    "StatefulSet": "linkerd.io/proxy-statefulset",
    "DaemonSet": "linkerd.io/proxy-daemonset",
    "ReplicaSet": "linkerd.io/proxy-replicaset",
    "ReplicationController": "linkerd.io/proxy-replicationcontroller",
    "Job": "linkerd.io/proxy-job",
    "CronJob": "linkerd.io/proxy-cronjob",
}
"""Workload kind -> the label naming the pod's workload."""

_END_ENTITY_VOLUME = "linkerd-identity-end-entity"
_TOKEN_VOLUME = "linkerd-identity-token"
_XTABLES_VOLUME = "linkerd-proxy-init-xtables-lock"
_TOKEN_LIFETIME = 86400


class InjectError(ValueError):
    """A pod that cannot be injected as asked; the message says which annotation or field."""


def is_injected(pod: Mapping[str, Any]) -> bool:
    """Whether the pod already runs the proxy."""
    containers = (pod.get("spec") or {}).get("containers") or []
    return any(c.get("name") == PROXY_CONTAINER for c in containers)


def _container_ports(spec: Mapping[str, Any]) -> dict[str, list[int]]:
    """Port name -> numbers, over all containers; unnamed ports under ``""``."""
    ports: dict[str, list[int]] = {}
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if isinstance(port.get("containerPort"), int):
                ports.setdefault(port.get("name", ""), []).append(port["containerPort"])
    return ports


def _join(*lists: str) -> str:
    return str(parse_ports(",".join(x for x in lists if x)))


def _gateway(annotations: Mapping[str, str]) -> bool:
    value = annotations.get(ENABLE_GATEWAY, "").strip().lower()
    if value not in ("", "true", "false"):
        raise InjectError(f'{ENABLE_GATEWAY}: {value!r} is not "true" or "false"')
    return value == "true"


def pod_settings(
    spec: Mapping[str, Any], annotations: Mapping[str, str], values: Values
) -> PodSettings:
    """The proxy settings for a pod with ``annotations``; ``InjectError`` on a bad value."""
    ports = _container_ports(spec)
    policy = annotations.get(DEFAULT_INBOUND_POLICY, values.default_inbound_policy).strip()
    if policy not in DEFAULT_INBOUND_POLICIES:
        raise InjectError(
            f"{DEFAULT_INBOUND_POLICY}: {policy!r} is not one of "
            + ", ".join(DEFAULT_INBOUND_POLICIES)
        )
    log_level = annotations.get(PROXY_LOG_LEVEL, "").strip() or values.proxy_log_level
    for key in (SKIP_INBOUND_PORTS, SKIP_OUTBOUND_PORTS):
        text = annotations.get(key, "")
        if not all(parse_ports(item).ranges for item in text.split(",") if item.strip()):
            raise InjectError(f"{key}: {text!r} is not a list of port numbers and lo-hi ranges")
    opaque = annotations.get(OPAQUE_PORTS, values.opaque_ports)
    return PodSettings(
        log_level=log_level,
        default_inbound_policy=policy,
        opaque_ports=str(parse_ports(opaque, lambda name: ports.get(name, []))),
        inbound_ports=_join(*(str(p) for p in sorted({p for ps in ports.values() for p in ps}))),
        skip_inbound_ports=_join(
            str(values.control_port),
            str(values.admin_port),
            values.ignore_inbound_ports,
            annotations.get(SKIP_INBOUND_PORTS, ""),
        ),
        skip_outbound_ports=_join(
            values.ignore_outbound_ports, annotations.get(SKIP_OUTBOUND_PORTS, "")
        ),
        gateway=_gateway(annotations),
    )


def _init_container(values: Values, pod: PodSettings) -> dict[str, Any]:
    command = [
        "isthmus", "component", "proxy-init",
        "--incoming-proxy-port", str(values.inbound_port),
        "--outgoing-proxy-port", str(values.outbound_port),
        "--proxy-uid", str(values.proxy_uid),
        "--inbound-ports-to-ignore", pod.skip_inbound_ports,
        "--outbound-ports-to-ignore", pod.skip_outbound_ports,
    ]  # fmt: skip
    return {
        "name": INIT_CONTAINER,
        "image": values.image,
        "imagePullPolicy": values.image_pull_policy,
        "command": command,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": False,
            "runAsUser": 0,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": _XTABLES_VOLUME, "mountPath": "/run"}],
    }


def _proxy_container(config: InjectConfig, pod: PodSettings) -> dict[str, Any]:
    values = config.values
    admin = values.admin_port
    return {
        "name": PROXY_CONTAINER,
        "image": values.image,
        "imagePullPolicy": values.image_pull_policy,
        "command": ["isthmus", "component", "proxy"],
        "env": proxy_env(values, pod, config.trust_anchors_pem),
        "ports": [
            {"name": "linkerd-proxy", "containerPort": values.inbound_port},
            {"name": "linkerd-admin", "containerPort": admin},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": admin},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": "/live", "port": admin},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": values.proxy_uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": _END_ENTITY_VOLUME, "mountPath": IDENTITY_DIR},
            {"name": _TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }


def _volumes() -> list[dict[str, Any]]:
    token = {
        "serviceAccountToken": {
            "audience": TOKEN_AUDIENCE,
            "expirationSeconds": _TOKEN_LIFETIME,
            "path": TOKEN_FILE,
        }
    }
    return [
        {"name": _END_ENTITY_VOLUME, "emptyDir": {"medium": "Memory"}},
        {"name": _TOKEN_VOLUME, "projected": {"sources": [token]}},
        {"name": _XTABLES_VOLUME, "emptyDir": {}},
    ]


def _map_ops(path: str, existing: Mapping[str, str] | None, new: Mapping[str, str]) -> list[Any]:
    if existing is None:
        return [jsonpatch.add(path, dict(new))]
    return [jsonpatch.add(f"{path}{jsonpatch.pointer(k)}", v) for k, v in new.items()]


def _list_ops(
    path: str, existing: list[Any] | None, new: Iterable[Any], *, first: bool
) -> list[Any]:
    items = list(new)
    if not existing:
        return [jsonpatch.add(path, items)]
    where = "0" if first else "-"
    ordered = reversed(items) if first else items
    return [jsonpatch.add(f"{path}/{where}", item) for item in ordered]


def inject_pod(
    pod: Mapping[str, Any],
    annotations: Mapping[str, str],
    config: InjectConfig,
    *,
    namespace: str | None = None,
    owner: tuple[str, str] | None = None,
) -> tuple[Pod, list[jsonpatch.Op]]:
    """The injected pod and the JSON Patch from ``pod`` to it (empty if already injected).

    ``annotations`` are those in force (the namespace's ``config.linkerd.io/*``
    overridden by the pod's); ``namespace`` is the pod's namespace if known;
    ``owner`` the (kind, name) of its workload. Raises ``InjectError``.
    """
    if is_injected(pod):
        return copy.deepcopy(dict(pod)), []
    spec = pod.get("spec")
    if not isinstance(spec, Mapping) or not spec.get("containers"):
        raise InjectError("the pod has no containers")
    values = config.values
    settings = pod_settings(spec, annotations, values)
    meta = pod.get("metadata")
    new_annotations = {
        "linkerd.io/created-by": config.created_by,
        "linkerd.io/proxy-version": values.image_tag,
        "linkerd.io/identity-mode": "default",
        "linkerd.io/trust-root-sha256": hashlib.sha256(
            config.trust_anchors_pem.encode()
        ).hexdigest(),
    }
    new_labels = {"linkerd.io/control-plane-ns": values.control_plane_ns}
    if namespace:
        new_labels["linkerd.io/workload-ns"] = namespace
    if owner and owner[0] in OWNER_LABELS:
        new_labels[OWNER_LABELS[owner[0]]] = owner[1]

    ops: list[jsonpatch.Op] = []
    if not isinstance(meta, Mapping):
        ops.append(jsonpatch.add("/metadata", {}))
        meta = {}
    ops += _map_ops("/metadata/annotations", meta.get("annotations"), new_annotations)
    ops += _map_ops("/metadata/labels", meta.get("labels"), new_labels)
    ops += _list_ops(
        "/spec/initContainers",
        spec.get("initContainers"),
        [_init_container(values, settings)],
        first=True,
    )
    ops += _list_ops(
        "/spec/containers", spec.get("containers"), [_proxy_container(config, settings)], first=True
    )
    ops += _list_ops("/spec/volumes", spec.get("volumes"), _volumes(), first=False)
    return jsonpatch.apply(pod, ops), ops
