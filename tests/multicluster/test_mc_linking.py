"""``link``'s pure parts: gateway facts, the kubeconfig, the Link, the controller and its RBAC."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from mesh.multicluster import labels as mc
from mesh.multicluster.linking import (
    GatewayFacts,
    LinkError,
    LinkOptions,
    credentials_kubeconfig,
    credentials_secret,
    gateway_facts,
    link_object,
    service_mirror_objects,
    unlink_references,
)
from mesh.multicluster.render import install_objects
from mesh.multicluster.values import McValues
from tests.install.support import find
from tests.multicluster.support import CA_PEM, decode_kubeconfig

VALUES = McValues(image_tag="dev")
GATEWAY = find(install_objects(VALUES), "Service", "linkerd-gateway")
GATEWAY["status"] = {"loadBalancer": {"ingress": [{"ip": "172.30.25.10"}, {"hostname": "gw.east"}]}}
FACTS = GatewayFacts(
    ("172.30.25.10",),
    4143,
    "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local",
    "/ready",
    4191,
    "3s",
)


def gateway_with(**changes: Any) -> dict[str, Any]:
    service = copy.deepcopy(GATEWAY)
    for path, value in changes.items():
        node = service
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return service


def test_gateway_facts_from_the_service() -> None:
    facts = gateway_facts(GATEWAY)
    assert facts.addresses == ("172.30.25.10", "gw.east")
    assert facts.port == 4143
    assert facts.identity.startswith(
        "linkerd-gateway.linkerd-multicluster.serviceaccount.identity."
    )
    assert (facts.probe_path, facts.probe_port, facts.probe_period) == ("/ready", 4191, "3s")


def test_flags_override_the_service() -> None:
    facts = gateway_facts(GATEWAY, addresses="10.1.1.1, 10.1.1.2", port=5143)
    assert facts.addresses == ("10.1.1.1", "10.1.1.2")
    assert facts.port == 5143


def test_node_port_gateway_uses_node_ports() -> None:
    service = gateway_with(spec__type="NodePort")
    service["spec"]["ports"][0]["nodePort"] = 30143
    service["spec"]["ports"][1]["nodePort"] = 30191
    facts = gateway_facts(service)
    assert (facts.port, facts.probe_port) == (30143, 30191)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"status": None}, "no LoadBalancer ingress address yet"),
        ({"status__loadBalancer__ingress": []}, "--gateway-addresses"),
        ({"metadata__annotations__mirror.linkerd.io/gateway-identity": None}, "gateway-identity"),
        ({"metadata__annotations__mirror.linkerd.io/probe-path": None}, "probe-path"),
        ({"metadata__annotations__mirror.linkerd.io/probe-period": "often"}, "neither seconds"),
        ({"spec__ports": []}, "no port named mc-gateway"),
    ],
)
def test_unusable_gateway_services(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(LinkError) as caught:
        gateway_facts(gateway_with(**changes))
    assert complaint in str(caught.value)


def test_probe_period_may_be_a_duration() -> None:
    service = gateway_with(**{"metadata__annotations__mirror.linkerd.io/probe-period": "1m"})
    assert gateway_facts(service).probe_period == "1m"


def test_kubeconfig_carries_server_ca_and_token() -> None:
    config = credentials_kubeconfig(
        cluster_name="east", server="https://172.30.25.2:6443", token="t0k", ca_data=CA_PEM
    )
    assert config["current-context"] == "east"
    assert config["clusters"] == [
        {
            "name": "east",
            "cluster": {
                "server": "https://172.30.25.2:6443",
                "certificate-authority-data": base64.b64encode(CA_PEM).decode(),
            },
        }
    ]
    assert config["users"] == [{"name": mc.REMOTE_ACCESS_SA, "user": {"token": "t0k"}}]


@pytest.mark.parametrize(
    ("server", "ca", "complaint"),
    [
        ("172.30.25.2:6443", CA_PEM, "https://"),
        ("http://172.30.25.2:6443", CA_PEM, "https://"),
        ("https://", CA_PEM, "https://"),
        ("https://172.30.25.2:6443", b"", "not a PEM certificate"),
    ],
)
def test_kubeconfig_the_mirror_controller_cannot_use_is_refused(
    server: str, ca: bytes, complaint: str
) -> None:
    with pytest.raises(LinkError) as caught:
        credentials_kubeconfig(cluster_name="east", server=server, token="t", ca_data=ca)
    assert complaint in str(caught.value)


def test_credentials_secret() -> None:
    options = LinkOptions("east")
    config = credentials_kubeconfig(
        cluster_name="east", server="https://x:6443", token="t", ca_data=CA_PEM
    )
    secret = credentials_secret(VALUES, options, config)
    assert secret["metadata"]["name"] == "cluster-credentials-east"
    assert secret["metadata"]["namespace"] == "linkerd-multicluster"
    assert secret["metadata"]["labels"] == {"mirror.linkerd.io/cluster-name": "east"}
    assert secret["type"] == "mirror.linkerd.io/remote-kubeconfig"
    assert decode_kubeconfig(secret) == config


def test_link_with_gateway_has_linkerds_fields_and_defaults() -> None:
    link = link_object(
        VALUES,
        LinkOptions("east"),
        target_cluster_domain="east.local",
        target_control_plane_ns="linkerd",
        gateway=FACTS,
    )
    assert link["apiVersion"] == "multicluster.linkerd.io/v1alpha3"
    assert link["kind"] == "Link"
    assert link["metadata"]["name"] == "east"
    assert link["metadata"]["labels"] == {"mirror.linkerd.io/cluster-name": "east"}
    assert link["spec"] == {
        "targetClusterName": "east",
        "targetClusterDomain": "east.local",
        "targetClusterLinkerdNamespace": "linkerd",
        "clusterCredentialsSecret": "cluster-credentials-east",
        "gatewayAddress": "172.30.25.10",
        "gatewayPort": "4143",
        "gatewayIdentity": FACTS.identity,
        "probeSpec": {
            "path": "/ready",
            "port": "4191",
            "period": "3s",
            "failureThreshold": "3",
            "timeout": "30s",
        },
        "selector": {"matchLabels": {"mirror.linkerd.io/exported": "true"}},
        "remoteDiscoverySelector": {
            "matchLabels": {"mirror.linkerd.io/exported": "remote-discovery"}
        },
        "federatedServiceSelector": {"matchLabels": {"mirror.linkerd.io/federated": "member"}},
        "excludedAnnotations": [],
        "excludedLabels": [],
    }


def test_link_without_gateway_has_no_gateway_fields() -> None:
    options = LinkOptions("east", excluded_labels=("team",), excluded_annotations=("note/*",))
    link = link_object(
        VALUES,
        options,
        target_cluster_domain="cluster.local",
        target_control_plane_ns="linkerd",
        gateway=None,
    )
    for field in ("gatewayAddress", "gatewayPort", "gatewayIdentity", "probeSpec", "selector"):
        assert field not in link["spec"]
    assert link["spec"]["excludedLabels"] == ["team"]
    assert link["spec"]["excludedAnnotations"] == ["note/*"]


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (LinkOptions("East"), "cluster name"),
        (LinkOptions("east_1"), "DNS-1123 label"),
        (LinkOptions("e" * 64), "cluster name"),
        (LinkOptions("east", selector="a in (b"), "--selector"),
        (LinkOptions("east", remote_discovery_selector="=x"), "--remote-discovery-selector"),
        (LinkOptions("east", federated_service_selector="a b"), "--federated-service-selector"),
        (LinkOptions("east", excluded_labels=("bad key",)), "--excluded-labels"),
        (LinkOptions("east", namespace="Bad"), "--namespace"),
    ],
)
def test_bad_options(options: LinkOptions, complaint: str) -> None:
    with pytest.raises(LinkError) as caught:
        options.validate()
    assert complaint in str(caught.value)


def test_mirror_controller_objects_and_least_privilege() -> None:
    docs = service_mirror_objects(VALUES, LinkOptions("east"))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ServiceAccount", "linkerd-service-mirror-east"),
        ("ClusterRole", "linkerd-service-mirror-access-local-resources-east"),
        ("ClusterRoleBinding", "linkerd-service-mirror-access-local-resources-east"),
        ("Role", "linkerd-service-mirror-read-remote-creds-east"),
        ("RoleBinding", "linkerd-service-mirror-read-remote-creds-east"),
        ("Deployment", "linkerd-service-mirror-east"),
    ]
    for doc in docs:
        assert doc["metadata"]["labels"]["mirror.linkerd.io/cluster-name"] == "east"
    cluster_role = docs[1]
    granted = {
        (g, r, v)
        for rule in cluster_role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == (
        {
            ("", r, v)
            for r in ("services", "endpoints")
            for v in ("get", "list", "watch", "create", "update", "patch", "delete")
        }
        | {("", "namespaces", v) for v in ("get", "list", "watch")}
        | {(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")}
    )
    role = docs[3]
    assert role["metadata"]["namespace"] == "linkerd-multicluster"
    assert role["rules"][0] == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["cluster-credentials-east"],
    }
    assert role["rules"][1:] == [
        {
            "apiGroups": ["multicluster.linkerd.io"],
            "resources": ["links"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["multicluster.linkerd.io"],
            "resources": ["links/status"],
            "verbs": ["get", "update", "patch"],
        },
    ]
    for binding in (docs[2], docs[4]):
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "linkerd-service-mirror-east",
                "namespace": "linkerd-multicluster",
            }
        ]


def test_mirror_controller_deployment() -> None:
    deploy = service_mirror_objects(VALUES, LinkOptions("east"))[-1]
    assert deploy["metadata"]["labels"]["component"] == "linkerd-service-mirror"
    template = deploy["spec"]["template"]
    assert template["metadata"]["labels"] == {
        "component": "linkerd-service-mirror",
        "mirror.linkerd.io/cluster-name": "east",
    }
    assert template["metadata"]["annotations"]["linkerd.io/inject"] == "disabled"
    assert template["spec"]["serviceAccountName"] == "linkerd-service-mirror-east"
    (container,) = template["spec"]["containers"]
    assert container["image"] == "isthmus/isthmus:dev"
    assert container["args"] == [
        "component",
        "service-mirror",
        "--link-name=east",
        "--namespace=linkerd-multicluster",
        "--metrics-addr=0.0.0.0:9999",
    ]
    assert container["ports"] == [{"name": "admin-http", "containerPort": 9999}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 9999}


def test_unlink_order_stops_the_controller_first() -> None:
    docs = [
        *service_mirror_objects(VALUES, LinkOptions("east")),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-east", "namespace": "a"}},
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web-east", "namespace": "a"},
        },
        {
            "apiVersion": "multicluster.linkerd.io/v1alpha3",
            "kind": "Link",
            "metadata": {"name": "east", "namespace": "linkerd-multicluster"},
        },
    ]
    refs = unlink_references([*docs, docs[0]])
    kinds = [r["kind"] for r in refs]
    assert kinds == [
        "Deployment",
        "Link",
        "Endpoints",
        "Service",
        "RoleBinding",
        "Role",
        "ServiceAccount",
        "ClusterRoleBinding",
        "ClusterRole",
    ]
    assert refs[2] == {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web-east", "namespace": "a"},
    }
    assert "namespace" not in refs[-1]["metadata"]
