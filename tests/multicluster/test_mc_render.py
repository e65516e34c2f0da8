"""``multicluster install``/``allow``/``uninstall`` manifests: names, ports, annotations, RBAC."""

from __future__ import annotations

import dataclasses

import pytest

from mesh.install import dump_all, load_all
from mesh.multicluster import labels as mc
from mesh.multicluster.render import (
    REMOTE_ACCESS_RULES,
    allow_objects,
    install_objects,
    uninstall_references,
)
from mesh.multicluster.values import McValues
from tests.install.support import find

VALUES = McValues(trust_domain="east.example", image_tag="v9")


def kinds_and_names(docs: list[dict]) -> list[tuple[str, str]]:
    return [(d["kind"], d["metadata"]["name"]) for d in docs]


def test_install_prints_everything_in_apply_order() -> None:
    docs = install_objects(VALUES)
    assert kinds_and_names(docs) == [
        ("Namespace", "linkerd-multicluster"),
        ("CustomResourceDefinition", "links.multicluster.linkerd.io"),
        ("ServiceAccount", "linkerd-service-mirror-remote-access-default"),
        ("Secret", "linkerd-service-mirror-remote-access-default-token"),
        ("ClusterRole", "linkerd-service-mirror-remote-access-default"),
        ("ClusterRoleBinding", "linkerd-service-mirror-remote-access-default"),
        ("Role", "linkerd-destination-remote-discovery"),
        ("RoleBinding", "linkerd-destination-remote-discovery"),
        ("ServiceAccount", "linkerd-gateway"),
        ("Deployment", "linkerd-gateway"),
        ("Service", "linkerd-gateway"),
    ]
    for doc in docs:
        assert doc["metadata"]["labels"]["linkerd.io/extension"] == "multicluster"
        if doc["kind"] not in (
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        ):
            assert doc["metadata"]["namespace"] == "linkerd-multicluster"
    assert load_all(dump_all(docs)) == docs


def test_destination_reads_links_and_secrets_only_in_the_multicluster_namespace() -> None:
    values = dataclasses.replace(VALUES, control_plane_ns="mesh-cp")
    role = find(install_objects(values), "Role", "linkerd-destination-remote-discovery")
    binding = find(install_objects(values), "RoleBinding", "linkerd-destination-remote-discovery")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == mc.NAMESPACE
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("", "secrets"): {"list", "watch"},
        ("multicluster.linkerd.io", "links"): {"list", "watch"},
    }
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "linkerd-destination-remote-discovery",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "linkerd-destination", "namespace": "mesh-cp"}
    ]


def test_gateway_is_a_pause_container_the_injector_meshes_as_a_gateway() -> None:
    deploy = find(install_objects(VALUES), "Deployment", "linkerd-gateway")
    template = deploy["spec"]["template"]
    assert template["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
    assert template["metadata"]["annotations"]["config.linkerd.io/enable-gateway"] == "true"
    (container,) = template["spec"]["containers"]
    assert container["name"] == "pause"
    assert container["image"] == "isthmus/isthmus:v9"
    assert container["args"] == ["component", "pause"]
    assert template["spec"]["serviceAccountName"] == "linkerd-gateway"
    assert (
        deploy["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    )


def test_gateway_service_tells_link_its_identity_ports_and_probe() -> None:
    service = find(install_objects(VALUES), "Service", "linkerd-gateway")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [
        {"name": "mc-gateway", "port": 4143, "targetPort": 4143, "protocol": "TCP"},
        {"name": "mc-probe", "port": 4191, "targetPort": 4191, "protocol": "TCP"},
    ]
    annotations = service["metadata"]["annotations"]
    assert annotations["mirror.linkerd.io/gateway-identity"] == (
        "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.east.example"
    )
    assert annotations["mirror.linkerd.io/probe-path"] == "/ready"
    assert annotations["mirror.linkerd.io/probe-period"] == "3"
    deploy = find(install_objects(VALUES), "Deployment", "linkerd-gateway")
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]


def test_settings_reach_the_gateway() -> None:
    values = VALUES.with_settings(
        [
            "gateway.serviceType=NodePort",
            "gateway.port=30143",
            "gateway.probe.seconds=10",
            "gateway.replicas=2",
            "linkerdVersion=edge-1",
        ]
    )
    docs = install_objects(values)
    service = find(docs, "Service", "linkerd-gateway")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["port"] == 30143
    assert service["spec"]["ports"][0]["targetPort"] == 4143, "the proxy's inbound port"
    assert service["metadata"]["annotations"]["mirror.linkerd.io/probe-period"] == "10"
    deploy = find(docs, "Deployment", "linkerd-gateway")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "isthmus/isthmus:edge-1"


def test_without_gateway() -> None:
    docs = install_objects(dataclasses.replace(VALUES, gateway_enabled=False))
    assert "linkerd-gateway" not in {d["metadata"]["name"] for d in docs}
    assert find(docs, "CustomResourceDefinition", "links.multicluster.linkerd.io")


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("gateway.port=0", "not a port number"),
        ("gateway.probe.port=4143", "must differ"),
        ("gateway.serviceType=External", "is not one of"),
        ("gateway.enabled=maybe", "true or false"),
        ("gateway.probe.path=ready", "must start with /"),
        ("identityTrustDomain=Not_A_Domain", "trust domain"),
        ("nope=1", "unknown setting"),
        ("novalue", "expected key=value"),
    ],
)
def test_bad_settings_are_named(setting: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        VALUES.with_settings([setting])
    assert complaint in str(caught.value)


def test_remote_access_reads_only() -> None:
    docs = install_objects(VALUES)
    role = find(docs, "ClusterRole", mc.REMOTE_ACCESS_SA)
    assert role["rules"] == REMOTE_ACCESS_RULES
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert {v for _, _, v in granted} <= {"get", "list", "watch"}
    for resource in ("services", "endpoints", "pods", "namespaces"):
        assert {("", resource, v) for v in ("get", "list", "watch")} <= granted
    assert ("discovery.k8s.io", "endpointslices", "watch") in granted
    (configmaps,) = [r for r in role["rules"] if r["resources"] == ["configmaps"]]
    assert configmaps["resourceNames"] == ["linkerd-config", "linkerd-identity-trust-roots"]
    secret = find(docs, "Secret", "linkerd-service-mirror-remote-access-default-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert (
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
        == mc.REMOTE_ACCESS_SA
    )
    binding = find(docs, "ClusterRoleBinding", mc.REMOTE_ACCESS_SA)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": mc.REMOTE_ACCESS_SA, "namespace": "linkerd-multicluster"}
    ]


def test_allow_gives_a_separate_revocable_account() -> None:
    docs = allow_objects(VALUES, "west-access")
    assert kinds_and_names(docs) == [
        ("ServiceAccount", "west-access"),
        ("Secret", "west-access-token"),
        ("ClusterRole", "west-access"),
        ("ClusterRoleBinding", "west-access"),
    ]
    assert find(docs, "ClusterRoleBinding", "west-access")["roleRef"]["name"] == "west-access"


def test_uninstall_names_everything_install_made_in_delete_order() -> None:
    refs = uninstall_references(dataclasses.replace(VALUES, gateway_enabled=False))
    installed = {(d["kind"], d["metadata"]["name"]) for d in install_objects(VALUES)}
    assert set(kinds_and_names(refs)) == installed, "the gateway goes even if installed without"
    kinds = [r["kind"] for r in refs]
    assert kinds[0] == "Deployment"
    assert kinds[-2:] == ["Namespace", "CustomResourceDefinition"]
    for ref in refs:
        assert set(ref) == {"apiVersion", "kind", "metadata"}
        assert ("namespace" in ref["metadata"]) == (
            ref["kind"]
            not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")
        )


def test_uninstall_adds_extra_objects_once() -> None:
    extra = allow_objects(VALUES, "west-access")[2:]
    refs = uninstall_references(VALUES, [*extra, *extra])
    names = kinds_and_names(refs)
    assert names.count(("ClusterRole", "west-access")) == 1
    assert names.count(("ClusterRoleBinding", "west-access")) == 1
