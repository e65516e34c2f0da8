"""The control plane's objects: namespace, configuration, secrets, workloads, services, webhook.

Pure builders from ``Values`` and the credentials to plain manifests.

TLS to the control plane (SEC-3). In Linkerd each control-plane pod carries a
proxy holding the pod's identity, and proxies reach the control plane through
it over mTLS. Here the control-plane pods run unmeshed
(``linkerd.io/inject: disabled``) and the services terminate TLS themselves,
under the same identities, so proxies see what they would see in Linkerd:
- identity serves as ``linkerd-identity.<ns>.serviceaccount.identity.<ns>.<td>``
  with a leaf it signs itself with the issuer (as Linkerd's identity controller
  certifies its own proxy), server-authenticated TLS only;
- destination and policy serve as ``linkerd-destination.…`` with certificates
  they ask identity for exactly as a proxy does (the pod's projected token,
  audience ``identity.l5d.io``, mounted from ``TOKEN_DIR``), and require the
  caller's certificate (mTLS).
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from mesh.identity.issuing import DEFAULT_AUDIENCE
from mesh.install import components as c
from mesh.install.credentials import IdentityMaterial, WebhookCert
from mesh.install.rbac import SERVICE_ACCOUNTS
from mesh.install.values import Values

__all__ = [
    "CONFIG_MAP",
    "DEPLOYMENTS",
    "ISSUER_SECRET",
    "TRUST_ROOTS_CONFIG_MAP",
    "WEBHOOK_CONFIG",
    "WEBHOOK_NAME",
    "WEBHOOK_SECRET",
    "WEBHOOK_SERVICE",
    "control_plane_objects",
    "created_by",
    "namespace",
]

Manifest = dict[str, Any]

CONFIG_MAP = "linkerd-config"
TRUST_ROOTS_CONFIG_MAP = "linkerd-identity-trust-roots"
ISSUER_SECRET = "linkerd-identity-issuer"
WEBHOOK_SECRET = "linkerd-proxy-injector-k8s-tls"
WEBHOOK_SERVICE = "linkerd-proxy-injector"
WEBHOOK_CONFIG = "linkerd-proxy-injector-webhook-config"
WEBHOOK_NAME = "linkerd-proxy-injector.linkerd.io"
DEPLOYMENTS = (
    "linkerd-identity",
    "linkerd-destination",
    "linkerd-proxy-injector",
    "linkerd-failover",
)
"""The control-plane Deployments, each of which must become ready."""

_CONTROLLER_UID = 2103
_TOKEN_SECONDS = 86400
_WEBHOOKS_DISABLED = {"config.linkerd.io/admission-webhooks": "disabled"}


def created_by(values: Values) -> str:
    """The ``linkerd.io/created-by`` annotation of everything install makes."""
    return f"isthmus/cli {values.image_tag}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _labels(values: Values, component: str) -> dict[str, str]:
    return {
        "linkerd.io/control-plane-component": component,
        "linkerd.io/control-plane-ns": values.control_plane_ns,
    }


def _meta(name: str, values: Values, component: str) -> Manifest:
    return {
        "name": name,
        "namespace": values.control_plane_ns,
        "labels": _labels(values, component),
        "annotations": {"linkerd.io/created-by": created_by(values)},
    }


def namespace(values: Values) -> Manifest:
    ns = values.control_plane_ns
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": ns,
            "labels": {
                "linkerd.io/is-control-plane": "true",
                "linkerd.io/control-plane-ns": ns,
                "pod-security.kubernetes.io/enforce": "privileged",
                **_WEBHOOKS_DISABLED,
            },
            "annotations": {"linkerd.io/inject": "disabled"},
        },
    }


def config_maps(values: Values, identity: IdentityMaterial) -> list[Manifest]:
    config = yaml.safe_dump(values.to_config(), sort_keys=False)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(CONFIG_MAP, values, "controller"),
            "data": {"values": config},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(TRUST_ROOTS_CONFIG_MAP, values, "identity"),
            "data": {"ca-bundle.crt": identity.trust_anchors_pem.decode()},
        },
    ]


def secrets(values: Values, identity: IdentityMaterial, webhook: WebhookCert) -> list[Manifest]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(ISSUER_SECRET, values, "identity"),
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": _b64(identity.issuer_cert_pem),
                "tls.key": _b64(identity.issuer_key_pem),
                "ca.crt": _b64(identity.trust_anchors_pem),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(WEBHOOK_SECRET, values, "proxy-injector"),
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": _b64(webhook.cert_pem), "tls.key": _b64(webhook.key_pem)},
        },
    ]


def _tcp_probe(port: int) -> Manifest:
    # identity, destination and policy serve only gRPC so far: the probe checks
    # the port accepts connections until they grow an HTTP admin port.
    return {"tcpSocket": {"port": port}, "periodSeconds": 5, "failureThreshold": 3}


def _http_probe(path: str, port: int) -> Manifest:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": 5, "failureThreshold": 3}


def _container(
    values: Values,
    name: str,
    command: list[str],
    ports: dict[str, int],
    readiness: Manifest,
    liveness: Manifest,
    mounts: dict[str, str],
) -> Manifest:
    container: Manifest = {
        "name": name,
        "image": values.image,
        "imagePullPolicy": values.image_pull_policy,
        "command": command,
        "ports": [{"name": n, "containerPort": p} for n, p in ports.items()],
        "readinessProbe": readiness,
        "livenessProbe": {**liveness, "initialDelaySeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": _CONTROLLER_UID,
            "runAsGroup": _CONTROLLER_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if mounts:
        container["volumeMounts"] = [
            {"name": volume, "mountPath": path, "readOnly": True} for volume, path in mounts.items()
        ]
    return container


def _deployment(
    values: Values,
    name: str,
    component: str,
    containers: list[Manifest],
    volumes: list[Manifest],
) -> Manifest:
    labels = _labels(values, component)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, values, component),
        "spec": {
            "replicas": values.controller_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    # Unmeshed for now (see the module docstring); Linkerd meshes these.
                    "annotations": {
                        "linkerd.io/inject": "disabled",
                        "linkerd.io/created-by": created_by(values),
                    },
                    "labels": {**labels, **_WEBHOOKS_DISABLED},
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNTS[component],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": containers,
                    **({"volumes": volumes} if volumes else {}),
                },
            },
        },
    }


def _trust_roots_volume() -> Manifest:
    return {"name": "trust-roots", "configMap": {"name": TRUST_ROOTS_CONFIG_MAP}}


def _token_volume() -> Manifest:
    token = {
        "serviceAccountToken": {
            "audience": DEFAULT_AUDIENCE,
            "expirationSeconds": _TOKEN_SECONDS,
            "path": c.TOKEN_FILE,
        }
    }
    return {"name": "identity-token", "projected": {"sources": [token]}}


def deployments(values: Values) -> list[Manifest]:
    identity = _container(
        values,
        "identity",
        c.identity_command(values),
        {"grpc": c.IDENTITY_PORT},
        _tcp_probe(c.IDENTITY_PORT),
        _tcp_probe(c.IDENTITY_PORT),
        {"identity-issuer": c.ISSUER_DIR, "trust-roots": c.TRUST_ROOTS_DIR},
    )
    certified = {"trust-roots": c.TRUST_ROOTS_DIR, "identity-token": c.TOKEN_DIR}
    destination = _container(
        values,
        "destination",
        c.destination_command(values),
        {"grpc": c.DESTINATION_PORT},
        _tcp_probe(c.DESTINATION_PORT),
        _tcp_probe(c.DESTINATION_PORT),
        certified,
    )
    policy = _container(
        values,
        "policy",
        c.policy_command(values),
        {"policy-grpc": c.POLICY_PORT},
        _tcp_probe(c.POLICY_PORT),
        _tcp_probe(c.POLICY_PORT),
        certified,
    )
    injector = _container(
        values,
        "proxy-injector",
        c.injector_command(values),
        {"proxy-injector": c.INJECTOR_PORT, "admin-http": c.INJECTOR_ADMIN_PORT},
        _http_probe("/ready", c.INJECTOR_ADMIN_PORT),
        _http_probe("/live", c.INJECTOR_ADMIN_PORT),
        {"tls": c.WEBHOOK_TLS_DIR, "config": c.CONFIG_DIR, "trust-roots": c.TRUST_ROOTS_DIR},
    )
    failover = _container(
        values,
        "failover",
        c.failover_command(values),
        {"admin-http": c.FAILOVER_ADMIN_PORT},
        _http_probe("/ready", c.FAILOVER_ADMIN_PORT),
        _http_probe("/live", c.FAILOVER_ADMIN_PORT),
        {},
    )
    issuer_volume = {"name": "identity-issuer", "secret": {"secretName": ISSUER_SECRET}}
    return [
        _deployment(
            values,
            "linkerd-identity",
            "identity",
            [identity],
            [issuer_volume, _trust_roots_volume()],
        ),
        _deployment(
            values,
            "linkerd-destination",
            "destination",
            [destination, policy],
            [_trust_roots_volume(), _token_volume()],
        ),
        _deployment(
            values,
            "linkerd-proxy-injector",
            "proxy-injector",
            [injector],
            [
                {"name": "tls", "secret": {"secretName": WEBHOOK_SECRET}},
                {"name": "config", "configMap": {"name": CONFIG_MAP}},
                _trust_roots_volume(),
            ],
        ),
        _deployment(values, "linkerd-failover", "failover", [failover], []),
    ]


def _service(
    values: Values, name: str, component: str, port: int, target: int, *, headless: bool
) -> Manifest:
    spec: Manifest = {
        "type": "ClusterIP",
        "selector": _labels(values, component),
        "ports": [{"name": "grpc", "port": port, "targetPort": target, "protocol": "TCP"}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, values, component),
        "spec": spec,
    }


def services(values: Values) -> list[Manifest]:
    injector = _service(
        values, WEBHOOK_SERVICE, "proxy-injector", 443, c.INJECTOR_PORT, headless=False
    )
    injector["spec"]["ports"][0]["name"] = "proxy-injector"
    table = [
        ("linkerd-identity", "identity", c.IDENTITY_PORT, False),
        ("linkerd-identity-headless", "identity", c.IDENTITY_PORT, True),
        ("linkerd-dst", "destination", c.DESTINATION_PORT, False),
        ("linkerd-dst-headless", "destination", c.DESTINATION_PORT, True),
        ("linkerd-policy", "destination", c.POLICY_PORT, True),
    ]
    return [
        *(
            _service(values, name, component, port, port, headless=headless)
            for name, component, port, headless in table
        ),
        injector,
    ]


def webhook_configuration(values: Values, webhook: WebhookCert) -> Manifest:
    """The MutatingWebhookConfiguration that sends pod creations to the injector."""
    not_disabled = {
        "matchExpressions": [
            {
                "key": "config.linkerd.io/admission-webhooks",
                "operator": "NotIn",
                "values": ["disabled"],
            }
        ]
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": WEBHOOK_CONFIG,
            "labels": _labels(values, "proxy-injector"),
            "annotations": {"linkerd.io/created-by": created_by(values)},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "namespaceSelector": not_disabled,
                "objectSelector": not_disabled,
                "clientConfig": {
                    "service": {
                        "name": WEBHOOK_SERVICE,
                        "namespace": values.control_plane_ns,
                        "path": "/",
                        "port": 443,
                    },
                    "caBundle": _b64(webhook.cert_pem),
                },
                "failurePolicy": values.webhook_failure_policy,
                "reinvocationPolicy": "Never",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "timeoutSeconds": 10,
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
            }
        ],
    }


def control_plane_objects(
    values: Values, identity: IdentityMaterial, webhook: WebhookCert
) -> list[Manifest]:
    """Everything but RBAC and CRDs, in the order kubectl should apply it."""
    return [
        *config_maps(values, identity),
        *secrets(values, identity, webhook),
        *deployments(values),
        *services(values),
        webhook_configuration(values, webhook),
    ]
