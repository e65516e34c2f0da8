"""The CRDs are valid apiextensions.k8s.io/v1: structural schemas, one storage version."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.crds import ALL_GROUPS, GROUPS, LINK_CRD, LINK_VERSIONS, REQUIRED, crds, link_crd
from mesh.install import dump_all, load_all

ALL = crds(groups=ALL_GROUPS)
BY_NAME = {c["metadata"]["name"]: c for c in ALL}

_LOGIC = ("allOf", "anyOf", "oneOf", "not")


def structural_problems(node: Any, path: str = "") -> list[str]:
    """Why ``node`` is not a structural schema (the API server's rules that apply here)."""
    if not isinstance(node, dict):
        return [f"{path}: not a mapping"]
    problems = []
    open_ended = node.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if int_or_string and "type" in node:
        problems.append(f"{path}: x-kubernetes-int-or-string with a type")
    if not node.get("type") and not (open_ended or int_or_string):
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{path}: array without items")
    if any(key in node for key in _LOGIC):
        problems.append(f"{path}: logic junctors are not used by these CRDs")
    for name, child in (node.get("properties") or {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}{{}}")
    return problems


def test_every_group_ships_and_names_are_plural_dot_group() -> None:
    assert {c["spec"]["group"] for c in ALL} == set(ALL_GROUPS)
    assert {c["spec"]["group"] for c in crds()} == set(GROUPS)
    for crd in ALL:
        spec = crd["spec"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
        assert spec["scope"] == "Namespaced"


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_versions_have_schemas_and_exactly_one_storage(name: str) -> None:
    versions = BY_NAME[name]["spec"]["versions"]
    assert [v["storage"] for v in versions].count(True) == 1
    for version in versions:
        assert version["served"] is True
        schema = version["schema"]["openAPIV3Schema"]
        assert structural_problems(schema) == [], version["name"]
        assert schema["properties"]["metadata"] == {"type": "object"}


@pytest.mark.parametrize(("name", "versions"), sorted(REQUIRED.items()))
def test_required_kinds_and_versions_are_served(name: str, versions: tuple[str, ...]) -> None:
    served = {v["name"] for v in BY_NAME[name]["spec"]["versions"] if v["served"]}
    assert set(versions) <= served


@pytest.mark.parametrize(
    ("name", "kind", "versions"),
    [
        ("servers.policy.linkerd.io", "Server", {"v1beta1", "v1beta3"}),
        ("serverauthorizations.policy.linkerd.io", "ServerAuthorization", {"v1beta1"}),
        ("authorizationpolicies.policy.linkerd.io", "AuthorizationPolicy", {"v1alpha1"}),
        ("meshtlsauthentications.policy.linkerd.io", "MeshTLSAuthentication", {"v1alpha1"}),
        ("networkauthentications.policy.linkerd.io", "NetworkAuthentication", {"v1alpha1"}),
        ("httproutes.policy.linkerd.io", "HTTPRoute", {"v1beta3"}),
        ("trafficsplits.split.smi-spec.io", "TrafficSplit", {"v1alpha1", "v1alpha2"}),
        ("links.multicluster.linkerd.io", "Link", {"v1alpha1", "v1alpha2", "v1alpha3"}),
        ("httproutes.gateway.networking.k8s.io", "HTTPRoute", {"v1"}),
    ],
)
def test_kinds_match_the_seeds(name: str, kind: str, versions: set[str]) -> None:
    crd = BY_NAME[name]
    assert crd["spec"]["names"]["kind"] == kind
    assert versions <= {v["name"] for v in crd["spec"]["versions"]}


def test_seed_fields_are_typed() -> None:
    server = BY_NAME["servers.policy.linkerd.io"]["spec"]["versions"][0]
    spec = server["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["port"] == {
        "description": "A port number, or the name of a container port.",
        "x-kubernetes-int-or-string": True,
    }
    assert "matchLabels" in spec["podSelector"]["properties"]
    split = BY_NAME["trafficsplits.split.smi-spec.io"]["spec"]["versions"]
    v1alpha1 = split[0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert v1alpha1["required"] == ["service", "backends"]
    link = BY_NAME["links.multicluster.linkerd.io"]["spec"]["versions"][-1]
    link_spec = link["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for field in ("targetClusterName", "gatewayAddress", "selector", "remoteDiscoverySelector"):
        assert field in link_spec


def test_the_link_crd_belongs_to_the_multicluster_extension() -> None:
    assert LINK_CRD not in {c["metadata"]["name"] for c in crds()}
    crd = link_crd("mesh-system")
    assert crd["metadata"]["name"] == LINK_CRD
    assert crd["metadata"]["labels"] == {
        "linkerd.io/control-plane-ns": "mesh-system",
        "linkerd.io/extension": "multicluster",
    }
    versions = crd["spec"]["versions"]
    assert tuple(v["name"] for v in versions) == LINK_VERSIONS
    assert [v["name"] for v in versions if v["storage"]] == ["v1alpha3"]
    probe = versions[-1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "probeSpec"
    ]["properties"]
    assert probe["failureThreshold"] == {
        "description": probe["failureThreshold"]["description"],
        "type": "string",
        "default": "3",
    }
    assert probe["timeout"]["default"] == "30s"
    spec = versions[-1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["gatewayPort"]["type"] == "string"
    for field in ("federatedServiceSelector", "excludedAnnotations", "excludedLabels"):
        assert field in spec


def test_protected_gateway_group_is_approved() -> None:
    meta = BY_NAME["httproutes.gateway.networking.k8s.io"]["metadata"]
    assert meta["annotations"]["api-approved.kubernetes.io"].startswith("https://")


def test_labels_name_the_control_plane_namespace() -> None:
    assert {c["metadata"]["labels"]["linkerd.io/control-plane-ns"] for c in ALL} == {"linkerd"}
    other = crds("mesh-system")
    assert {c["metadata"]["labels"]["linkerd.io/control-plane-ns"] for c in other} == {
        "mesh-system"
    }
    assert {c["metadata"]["labels"]["linkerd.io/control-plane-ns"] for c in crds()} == {
        "linkerd"
    }, "crds() must hand out copies"


def test_dump_has_no_yaml_aliases_and_round_trips() -> None:
    text = dump_all(ALL)
    assert "&id" not in text
    assert "*id" not in text
    assert load_all(text) == ALL


def test_structural_checker_catches_problems() -> None:
    assert structural_problems({"properties": {}}) == [": no type"]
    assert structural_problems({"type": "array"}) == [": array without items"]
    bad = {"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": True, "type": "x"}}}
    assert structural_problems(bad) == [".a: x-kubernetes-int-or-string with a type"]
