"""What ``multicluster link``, ``link-gen`` and ``unlink`` print: pure builders.

``link`` runs against the TARGET cluster and its output is applied to the
SOURCE. From the target it reads facts (``GatewayFacts`` from the gateway
Service, the remote-access token, the CA and API server address of the
kubeconfig context, the cluster domain); from those this module builds the
credentials Secret (a kubeconfig for the remote-access account), the Link
(``multicluster.linkerd.io/v1alpha3``) and the Link's mirror controller with
least-privilege RBAC. Every per-link object is labelled
``mirror.linkerd.io/cluster-name: <link>`` so ``unlink`` can find it. Bad input
raises ``LinkError`` with a message that says what to do.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from mesh.identity.names import check_label
from mesh.install.render import reference
from mesh.multicluster import labels as mc
from mesh.multicluster.selectors import SelectorError, check_label_key, parse_selector
from mesh.multicluster.values import McValues

__all__ = [
    "DEFAULT_FEDERATED_SELECTOR",
    "DEFAULT_REMOTE_DISCOVERY_SELECTOR",
    "DEFAULT_SELECTOR",
    "GatewayFacts",
    "LinkError",
    "LinkOptions",
    "check_cluster_name",
    "credentials_kubeconfig",
    "credentials_secret",
    "gateway_facts",
    "link_object",
    "local_access_role_name",
    "read_creds_role_name",
    "service_mirror_objects",
    "unlink_references",
]

Manifest = dict[str, Any]

DEFAULT_SELECTOR = f"{mc.EXPORTED}={mc.EXPORTED_GATEWAY}"
DEFAULT_REMOTE_DISCOVERY_SELECTOR = f"{mc.EXPORTED}={mc.EXPORTED_REMOTE_DISCOVERY}"
DEFAULT_FEDERATED_SELECTOR = f"{mc.FEDERATED}={mc.FEDERATED_MEMBER}"
PROBE_FAILURE_THRESHOLD = "3"
PROBE_TIMEOUT = "30s"
_DURATION = re.compile(r"(\d+(\.\d+)?(h|m|s|ms))+")


class LinkError(ValueError):
    """Input ``link`` cannot use; the message says what is wrong and what to do."""


def check_cluster_name(name: str) -> None:
    """``LinkError`` unless ``name`` can name mirrors (``<svc>-<name>``) and label values."""
    try:
        check_label("cluster name", name)
    except ValueError as e:
        raise LinkError(f"{e}; it becomes part of mirror names and label values") from None


def local_access_role_name(link: str) -> str:
    return f"linkerd-service-mirror-access-local-resources-{link}"


def read_creds_role_name(link: str) -> str:
    return f"linkerd-service-mirror-read-remote-creds-{link}"


@dataclass(frozen=True)
class GatewayFacts:
    """What the Link needs from the target's gateway Service."""

    addresses: tuple[str, ...]
    port: int
    identity: str
    probe_path: str
    probe_port: int
    probe_period: str
    """A duration, e.g. ``3s``."""


def _service_port(service: Manifest, name: str) -> int | None:
    spec = service.get("spec") or {}
    for port in spec.get("ports") or []:
        if port.get("name") == name:
            if spec.get("type") == "NodePort" and port.get("nodePort"):
                return int(port["nodePort"])
            return int(port["port"])
    return None


def gateway_facts(
    service: Manifest, *, addresses: str = "", port: int | None = None
) -> GatewayFacts:
    """Read the gateway Service; ``addresses``/``port`` (the flags) override what it says."""
    where = f"Service {mc.NAMESPACE}/{mc.GATEWAY_NAME}"
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    if addresses:
        chosen = tuple(a.strip() for a in addresses.split(",") if a.strip())
    else:
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        chosen = tuple(a for i in ingress if (a := i.get("ip") or i.get("hostname")))
    if not chosen:
        raise LinkError(
            f"{where} has no LoadBalancer ingress address yet: wait until "
            f"`kubectl -n {mc.NAMESPACE} get svc {mc.GATEWAY_NAME}` shows an EXTERNAL-IP, "
            "or pass --gateway-addresses"
        )
    identity = annotations.get(mc.GATEWAY_IDENTITY, "")
    if not identity:
        raise LinkError(
            f"{where} has no {mc.GATEWAY_IDENTITY} annotation; "
            "re-apply `isthmus multicluster install` on the target"
        )
    gateway_port = port or _service_port(service, mc.GATEWAY_PORT_NAME)
    if gateway_port is None:
        raise LinkError(f"{where} has no port named {mc.GATEWAY_PORT_NAME}; pass --gateway-port")
    probe_port = _service_port(service, mc.PROBE_PORT_NAME)
    if probe_port is None:
        raise LinkError(f"{where} has no port named {mc.PROBE_PORT_NAME} for the gateway probe")
    path = annotations.get(mc.PROBE_PATH_ANNOTATION, "")
    if not path:
        raise LinkError(f"{where} has no {mc.PROBE_PATH_ANNOTATION} annotation")
    period = annotations.get(mc.PROBE_PERIOD_ANNOTATION, "3").strip()
    if period.isdigit():
        period = f"{int(period)}s"
    elif not _DURATION.fullmatch(period):
        raise LinkError(
            f"{where}: {mc.PROBE_PERIOD_ANNOTATION} {period!r} is neither seconds nor a duration"
        )
    return GatewayFacts(chosen, gateway_port, identity, path, probe_port, period)


@dataclass(frozen=True)
class LinkOptions:
    """The Link's settings from the command line; ``validate`` checks them."""

    cluster_name: str
    namespace: str = mc.NAMESPACE
    selector: str = DEFAULT_SELECTOR
    remote_discovery_selector: str = DEFAULT_REMOTE_DISCOVERY_SELECTOR
    federated_service_selector: str = DEFAULT_FEDERATED_SELECTOR
    excluded_labels: Sequence[str] = field(default_factory=tuple)
    excluded_annotations: Sequence[str] = field(default_factory=tuple)

    def selectors(self) -> dict[str, Manifest]:
        """The three parsed selectors by Link field; ``LinkError`` naming the flag if bad."""
        parsed = {}
        for flag, key, text in (
            ("--selector", "selector", self.selector),
            (
                "--remote-discovery-selector",
                "remoteDiscoverySelector",
                self.remote_discovery_selector,
            ),
            (
                "--federated-service-selector",
                "federatedServiceSelector",
                self.federated_service_selector,
            ),
        ):
            try:
                parsed[key] = parse_selector(text)
            except SelectorError as e:
                raise LinkError(f"{flag}: {e}") from None
        return parsed

    def validate(self) -> None:
        check_cluster_name(self.cluster_name)
        try:
            check_label("namespace", self.namespace)
        except ValueError as e:
            raise LinkError(f"--namespace: {e}") from None
        self.selectors()
        for flag, keys in (
            ("--excluded-labels", self.excluded_labels),
            ("--excluded-annotations", self.excluded_annotations),
        ):
            for key in keys:
                pattern = key[:-1] if key.endswith("*") else key
                try:
                    check_label_key(pattern.rstrip("/") if pattern.endswith("/") else pattern)
                except SelectorError as e:
                    raise LinkError(f"{flag}: {e}") from None


def credentials_kubeconfig(
    *,
    cluster_name: str,
    server: str,
    token: str,
    ca_data: bytes,
    user: str = mc.REMOTE_ACCESS_SA,
) -> Manifest:
    """A kubeconfig with one context: ``server``, its CA (PEM bytes) and the bearer ``token``.

    The mirror controller verifies the target with the CA, so one is required.
    """
    if not re.fullmatch(r"https://[^/\s]+(/\S*)?", server):
        raise LinkError(f"API server address {server!r} must be an https:// URL")
    if b"-----BEGIN CERTIFICATE-----" not in ca_data:
        raise LinkError("the target's CA is not a PEM certificate")
    cluster: Manifest = {
        "server": server,
        "certificate-authority-data": base64.b64encode(ca_data).decode(),
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
    }


def _link_labels(link: str) -> dict[str, str]:
    return {mc.CLUSTER_NAME: link}


def _meta(values: McValues, name: str, namespace: str | None, link: str, **extra: str) -> Manifest:
    meta: Manifest = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {**_link_labels(link), **extra}
    meta["annotations"] = {"linkerd.io/created-by": f"isthmus/cli {values.image_tag}"}
    return meta


def credentials_secret(values: McValues, options: LinkOptions, kubeconfig: Manifest) -> Manifest:
    """The Secret the Link's mirror controller reads the target's kubeconfig from."""
    text = yaml.safe_dump(kubeconfig, sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(
            values,
            mc.credentials_secret_name(options.cluster_name),
            options.namespace,
            options.cluster_name,
        ),
        "type": mc.CREDENTIALS_SECRET_TYPE,
        "data": {mc.CREDENTIALS_KEY: base64.b64encode(text.encode()).decode()},
    }


def link_object(
    values: McValues,
    options: LinkOptions,
    *,
    target_cluster_domain: str,
    target_control_plane_ns: str,
    gateway: GatewayFacts | None,
) -> Manifest:
    """The Link; without a gateway (``--gateway=false``) it has no gateway fields or probe."""
    options.validate()
    selectors = options.selectors()
    spec: Manifest = {
        "targetClusterName": options.cluster_name,
        "targetClusterDomain": target_cluster_domain,
        "targetClusterLinkerdNamespace": target_control_plane_ns,
        "clusterCredentialsSecret": mc.credentials_secret_name(options.cluster_name),
    }
    if gateway is not None:
        spec |= {
            "gatewayAddress": ",".join(gateway.addresses),
            "gatewayPort": str(gateway.port),
            "gatewayIdentity": gateway.identity,
            "probeSpec": {
                "path": gateway.probe_path,
                "port": str(gateway.probe_port),
                "period": gateway.probe_period,
                "failureThreshold": PROBE_FAILURE_THRESHOLD,
                "timeout": PROBE_TIMEOUT,
            },
            "selector": selectors["selector"],
        }
    spec |= {
        "remoteDiscoverySelector": selectors["remoteDiscoverySelector"],
        "federatedServiceSelector": selectors["federatedServiceSelector"],
        "excludedAnnotations": list(options.excluded_annotations),
        "excludedLabels": list(options.excluded_labels),
    }
    return {
        "apiVersion": "multicluster.linkerd.io/v1alpha3",
        "kind": "Link",
        "metadata": _meta(values, options.cluster_name, options.namespace, options.cluster_name),
        "spec": spec,
    }


def _rule(groups: Iterable[str], resources: Iterable[str], verbs: Iterable[str]) -> Manifest:
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


def service_mirror_objects(values: McValues, options: LinkOptions) -> list[Manifest]:
    """The Link's mirror controller: ServiceAccount, RBAC and Deployment (not meshed)."""
    link, ns = options.cluster_name, options.namespace
    name = mc.service_mirror_name(link)
    pod_labels = {mc.COMPONENT: mc.SERVICE_MIRROR_COMPONENT, mc.CLUSTER_NAME: link}
    local_role = local_access_role_name(link)
    creds_role = read_creds_role_name(link)
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    rbac = "rbac.authorization.k8s.io/v1"
    objects: list[Manifest] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(values, name, ns, link)},
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": _meta(values, local_role, None, link),
            "rules": [
                _rule(
                    [""],
                    ["services", "endpoints"],
                    ["get", "list", "watch", "create", "update", "patch", "delete"],
                ),
                _rule([""], ["namespaces"], ["get", "list", "watch"]),
                _rule(["", "events.k8s.io"], ["events"], ["create", "patch"]),
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(values, local_role, None, link),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": local_role,
            },
            "subjects": subject,
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": _meta(values, creds_role, ns, link),
            "rules": [
                {
                    **_rule([""], ["secrets"], ["get"]),
                    "resourceNames": [mc.credentials_secret_name(link)],
                },
                _rule(["multicluster.linkerd.io"], ["links"], ["get", "list", "watch"]),
                _rule(["multicluster.linkerd.io"], ["links/status"], ["get", "update", "patch"]),
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": _meta(values, creds_role, ns, link),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": creds_role,
            },
            "subjects": subject,
        },
    ]
    probe = {"httpGet": {"path": "/ready", "port": mc.MIRROR_METRICS_PORT}, "periodSeconds": 5}
    container = {
        "name": "service-mirror",
        "image": values.image,
        "imagePullPolicy": values.image_pull_policy,
        "args": [
            "component",
            "service-mirror",
            f"--link-name={link}",
            f"--namespace={ns}",
            f"--metrics-addr=0.0.0.0:{mc.MIRROR_METRICS_PORT}",
        ],
        "ports": [{"name": mc.MIRROR_ADMIN_PORT_NAME, "containerPort": mc.MIRROR_METRICS_PORT}],
        "readinessProbe": probe,
        "livenessProbe": {
            "httpGet": {"path": "/live", "port": mc.MIRROR_METRICS_PORT},
            "periodSeconds": 10,
            "initialDelaySeconds": 10,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 2103,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    objects.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(
                values, name, ns, link, **{mc.COMPONENT: mc.SERVICE_MIRROR_COMPONENT}
            ),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": pod_labels},
                "template": {
                    "metadata": {
                        "annotations": {"linkerd.io/inject": "disabled"},
                        "labels": pod_labels,
                    },
                    "spec": {
                        "serviceAccountName": name,
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [container],
                    },
                },
            },
        }
    )
    return objects


_UNLINK_ORDER = (
    "Deployment",
    "Link",
    "Endpoints",
    "Service",
    "Secret",
    "RoleBinding",
    "Role",
    "ServiceAccount",
    "ClusterRoleBinding",
    "ClusterRole",
)


def unlink_references(found: Iterable[Manifest]) -> list[Manifest]:
    """References to ``found`` (what ``unlink`` listed in the source) in deletion order.

    The controller goes first so it cannot recreate mirrors, then the Link, the
    mirrors' Endpoints before their Services, and the credentials and RBAC last.
    """
    rank = {kind: i for i, kind in enumerate(_UNLINK_ORDER)}
    seen: set[tuple[str, str, str]] = set()
    references = []
    for obj in sorted(found, key=lambda o: rank.get(o["kind"], len(rank))):
        ref = reference(obj)
        key = (ref["kind"], ref["metadata"].get("namespace", ""), ref["metadata"]["name"])
        if key not in seen:
            seen.add(key)
            references.append(ref)
    return references
