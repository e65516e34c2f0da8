"""The proxy's environment: the contract between the injector and ``isthmus component proxy``.

Names follow Linkerd's proxy (``LINKERD2_PROXY_*``). Variables are listed in
the order the container gets them, because Kubernetes expands ``$(VAR)`` only
against variables defined earlier. Addresses are ``host:port``; host names end
with a dot (absolute, so the resolver's search list is skipped). Lists are
comma-separated.

Downward API (the pod's own facts)
  ``_pod_name``, ``_pod_ns``, ``_pod_nodeName``, ``_pod_sa``  metadata.name / .namespace,
      spec.nodeName, spec.serviceAccountName
  ``_l5d_ns``, ``_l5d_trustdomain``  the control-plane namespace and trust domain

Logging
  ``LINKERD2_PROXY_LOG``  level, e.g. ``warn,linkerd=info`` (``config.linkerd.io/proxy-log-level``)
  ``LINKERD2_PROXY_LOG_FORMAT``  ``plain``

Listeners
  ``LINKERD2_PROXY_INBOUND_LISTEN_ADDR``  ``0.0.0.0:4143``
  ``LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR``  ``127.0.0.1:4140``
  ``LINKERD2_PROXY_ADMIN_LISTEN_ADDR``  ``0.0.0.0:4191`` (``/metrics``, ``/ready``, ``/live``)
  ``LINKERD2_PROXY_CONTROL_LISTEN_ADDR``  ``0.0.0.0:4190`` (tap, mTLS only)
  ``LINKERD2_PROXY_TAP_SVC_NAME``  who may tap: viz's tap identity,
      ``tap.linkerd-viz.serviceaccount.identity.<cp-ns>.<trust-domain>`` (as Linkerd viz)

Inbound
  ``LINKERD2_PROXY_INBOUND_IPS``  the pod's IPs (status.podIPs)
  ``LINKERD2_PROXY_INBOUND_PORTS``  the application's declared container ports
  ``LINKERD2_PROXY_INBOUND_DEFAULT_POLICY``  all-unauthenticated | all-authenticated |
      cluster-unauthenticated | cluster-authenticated | deny | audit
  ``LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION``  opaque ports and ranges
  ``LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS``  CIDRs that count as "cluster" to policies
  ``LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES``  ``svc.<cluster-domain>.``, only on pods
      annotated ``config.linkerd.io/enable-gateway: "true"`` (the multicluster gateway)

Discovery (destination service)
  ``LINKERD2_PROXY_DESTINATION_SVC_ADDR``  ``linkerd-dst-headless.<ns>.svc.<domain>.:8086``
  ``LINKERD2_PROXY_DESTINATION_SVC_NAME``  the destination service's identity
  ``LINKERD2_PROXY_DESTINATION_CONTEXT``  ``{"ns":…, "nodeName":…, "pod":…}`` (JSON)
  ``LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES``  ``svc.<cluster-domain>.``
  ``LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS``  CIDRs whose IPs are resolved via discovery

Policy (policy service)
  ``LINKERD2_PROXY_POLICY_SVC_ADDR``  ``linkerd-policy.<ns>.svc.<domain>.:8090``
  ``LINKERD2_PROXY_POLICY_SVC_NAME``  the policy service's identity
  ``LINKERD2_PROXY_POLICY_WORKLOAD``  ``{"ns":…, "pod":…}`` (JSON)

Identity
  ``LINKERD2_PROXY_IDENTITY_LOCAL_NAME``
      ``$(_pod_sa).$(_pod_ns).serviceaccount.identity.<cp-ns>.<trust-domain>``
  ``LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS``  PEM bundle of the trust anchors
  ``LINKERD2_PROXY_IDENTITY_TOKEN_FILE``  projected service-account token (audience
      ``identity.l5d.io``) presented to the identity service
  ``LINKERD2_PROXY_IDENTITY_DIR``  writable in-memory directory for the key and certificate
  ``LINKERD2_PROXY_IDENTITY_SVC_ADDR``  ``linkerd-identity-headless.<ns>.svc.<domain>.:8080``
  ``LINKERD2_PROXY_IDENTITY_SVC_NAME``  the identity service's identity
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mesh.identity.issuing import DEFAULT_AUDIENCE
from mesh.install.components import DESTINATION_PORT, IDENTITY_PORT, POLICY_PORT
from mesh.install.values import Values

__all__ = [
    "IDENTITY_DIR",
    "TAP_NAMESPACE",
    "TAP_SERVICE_ACCOUNT",
    "TOKEN_AUDIENCE",
    "TOKEN_DIR",
    "TOKEN_FILE",
    "PodSettings",
    "proxy_env",
    "tap_identity",
]

IDENTITY_DIR = "/var/run/linkerd/identity/end-entity"
TOKEN_DIR = "/var/run/secrets/tokens"
TOKEN_FILE = "linkerd-identity-token"
TOKEN_AUDIENCE = DEFAULT_AUDIENCE


@dataclass(frozen=True)
class PodSettings:
    """One pod's proxy settings: the install's values with the pod's annotations applied."""

    log_level: str
    default_inbound_policy: str
    opaque_ports: str
    inbound_ports: str
    skip_inbound_ports: str
    skip_outbound_ports: str
    gateway: bool = False
    """``config.linkerd.io/enable-gateway: "true"``: the proxy is a multicluster gateway."""


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _identity(service_account: str, values: Values) -> str:
    return (
        f"{service_account}.{values.control_plane_ns}.serviceaccount.identity."
        f"{values.control_plane_ns}.{values.identity_trust_domain}"
    )


TAP_NAMESPACE = "linkerd-viz"
TAP_SERVICE_ACCOUNT = "tap"


def tap_identity(values: Values) -> str:
    """The identity allowed to tap proxies (SEC-2): viz's tap service, as in Linkerd."""
    ns = values.control_plane_ns
    return (
        f"{TAP_SERVICE_ACCOUNT}.{TAP_NAMESPACE}.serviceaccount.identity."
        f"{ns}.{values.identity_trust_domain}"
    )


def _svc_addr(service: str, values: Values, port: int) -> str:
    return f"{service}.{values.control_plane_ns}.svc.{values.cluster_domain}.:{port}"


def proxy_env(values: Values, pod: PodSettings, trust_anchors_pem: str) -> list[dict[str, Any]]:
    """The proxy container's ``env``, in dependency order (see the module docstring)."""
    ns = values.control_plane_ns
    networks = values.cluster_networks
    return [
        _field("_pod_name", "metadata.name"),
        _field("_pod_ns", "metadata.namespace"),
        _field("_pod_nodeName", "spec.nodeName"),
        _field("_pod_sa", "spec.serviceAccountName"),
        _value("_l5d_ns", ns),
        _value("_l5d_trustdomain", values.identity_trust_domain),
        _value("LINKERD2_PROXY_LOG", pod.log_level),
        _value("LINKERD2_PROXY_LOG_FORMAT", "plain"),
        _value("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", f"0.0.0.0:{values.inbound_port}"),
        _value("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", f"127.0.0.1:{values.outbound_port}"),
        _value("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", f"0.0.0.0:{values.admin_port}"),
        _value("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", f"0.0.0.0:{values.control_port}"),
        _value("LINKERD2_PROXY_TAP_SVC_NAME", tap_identity(values)),
        _field("LINKERD2_PROXY_INBOUND_IPS", "status.podIPs"),
        _value("LINKERD2_PROXY_INBOUND_PORTS", pod.inbound_ports),
        _value("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", pod.default_inbound_policy),
        _value("LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", pod.opaque_ports),
        *(
            [_value("LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES", f"svc.{values.cluster_domain}.")]
            if pod.gateway
            else []
        ),
        _value("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", networks),
        _value(
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            _svc_addr("linkerd-dst-headless", values, DESTINATION_PORT),
        ),
        _value("LINKERD2_PROXY_DESTINATION_SVC_NAME", _identity("linkerd-destination", values)),
        _value(
            "LINKERD2_PROXY_DESTINATION_CONTEXT",
            '{"ns":"$(_pod_ns)", "nodeName":"$(_pod_nodeName)", "pod":"$(_pod_name)"}',
        ),
        _value("LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", f"svc.{values.cluster_domain}."),
        _value("LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", networks),
        _value("LINKERD2_PROXY_POLICY_SVC_ADDR", _svc_addr("linkerd-policy", values, POLICY_PORT)),
        _value("LINKERD2_PROXY_POLICY_SVC_NAME", _identity("linkerd-destination", values)),
        _value("LINKERD2_PROXY_POLICY_WORKLOAD", '{"ns":"$(_pod_ns)", "pod":"$(_pod_name)"}'),
        _value(
            "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
            f"$(_pod_sa).$(_pod_ns).serviceaccount.identity.{ns}.{values.identity_trust_domain}",
        ),
        _value("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", trust_anchors_pem),
        _value("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", f"{TOKEN_DIR}/{TOKEN_FILE}"),
        _value("LINKERD2_PROXY_IDENTITY_DIR", IDENTITY_DIR),
        _value(
            "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            _svc_addr("linkerd-identity-headless", values, IDENTITY_PORT),
        ),
        _value("LINKERD2_PROXY_IDENTITY_SVC_NAME", _identity("linkerd-identity", values)),
    ]
