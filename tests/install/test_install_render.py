"""``install`` output: well-formed, namespaced right, least-privilege, consistent secrets."""

from __future__ import annotations

import base64
import importlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mesh.identity import PemFile, check_issuer
from mesh.inject.pod import inject_pod
from mesh.install import Values, dump_all, load_all, render_install, uninstall_objects
from mesh.install import components as c
from mesh.install.controlplane import DEPLOYMENTS, WEBHOOK_CONFIG, WEBHOOK_SECRET
from mesh.install.rbac import NAMESPACED_RULES, RULES
from mesh.install.render import CLUSTER_SCOPED_KINDS
from tests.inject import support as inject_support
from tests.install.support import NOW, find, identity_for, rendered, webhook_for

DOCS = rendered()


def _b64(doc: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(doc["data"][key])


def test_every_document_is_a_kubernetes_object() -> None:
    assert load_all(dump_all(DOCS)) == DOCS
    for doc in DOCS:
        assert doc["apiVersion"]
        assert doc["kind"]
        assert doc["metadata"]["name"]


@pytest.mark.parametrize("ns", ["linkerd", "mesh-system"])
def test_namespaced_objects_live_in_the_control_plane_namespace(ns: str) -> None:
    docs = rendered(Values(control_plane_ns=ns))
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED_KINDS:
            assert "namespace" not in doc["metadata"], doc["metadata"]["name"]
        else:
            assert doc["metadata"]["namespace"] == ns, doc["metadata"]["name"]
    assert docs[0]["kind"] == "Namespace"
    assert docs[0]["metadata"]["name"] == ns


def test_the_namespace_is_marked_as_the_control_plane_and_never_injected() -> None:
    namespace = find(DOCS, "Namespace", "linkerd")["metadata"]
    assert namespace["labels"]["linkerd.io/is-control-plane"] == "true"
    assert namespace["labels"]["config.linkerd.io/admission-webhooks"] == "disabled"
    for name in DEPLOYMENTS:
        template = find(DOCS, "Deployment", name)["spec"]["template"]
        assert template["metadata"]["annotations"]["linkerd.io/inject"] == "disabled"


def test_expected_objects_are_all_there() -> None:
    kinds_names = {(d["kind"], d["metadata"]["name"]) for d in DOCS}
    for expected in [
        ("ConfigMap", "linkerd-config"),
        ("ConfigMap", "linkerd-identity-trust-roots"),
        ("Secret", "linkerd-identity-issuer"),
        ("Secret", WEBHOOK_SECRET),
        ("Service", "linkerd-identity"),
        ("Service", "linkerd-dst"),
        ("Service", "linkerd-dst-headless"),
        ("Service", "linkerd-policy"),
        ("Service", "linkerd-proxy-injector"),
        ("MutatingWebhookConfiguration", WEBHOOK_CONFIG),
        *(("Deployment", name) for name in DEPLOYMENTS),
    ]:
        assert expected in kinds_names


@pytest.mark.parametrize(
    ("deployment", "ports"),
    [
        ("linkerd-identity", {8080}),
        ("linkerd-destination", {8086, 8090}),
        ("linkerd-proxy-injector", {8443, 9995}),
    ],
)
def test_deployments_expose_their_ports_and_probe_readiness(
    deployment: str, ports: set[int]
) -> None:
    spec = find(DOCS, "Deployment", deployment)["spec"]
    containers = spec["template"]["spec"]["containers"]
    assert {p["containerPort"] for c in containers for p in c["ports"]} == ports
    for container in containers:
        assert container["readinessProbe"]
        assert container["image"] == f"isthmus/isthmus:{Values().image_tag}"
        assert container["command"][:2] == ["isthmus", "component"]
        assert container["securityContext"]["runAsNonRoot"] is True
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_injector_probes_http_health() -> None:
    container = find(DOCS, "Deployment", "linkerd-proxy-injector")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 9995}


def test_services_select_their_pods() -> None:
    for name, component in [
        ("linkerd-identity", "identity"),
        ("linkerd-dst-headless", "destination"),
        ("linkerd-policy", "destination"),
        ("linkerd-proxy-injector", "proxy-injector"),
    ]:
        selector = find(DOCS, "Service", name)["spec"]["selector"]
        assert selector["linkerd.io/control-plane-component"] == component
    assert find(DOCS, "Service", "linkerd-dst-headless")["spec"]["clusterIP"] == "None"
    assert find(DOCS, "Service", "linkerd-proxy-injector")["spec"]["ports"][0]["port"] == 443


def _rules(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], rule) for d in DOCS if d["kind"] == kind for rule in d["rules"]]


def test_rbac_grants_no_wildcards() -> None:
    for _, rule in _rules("ClusterRole") + _rules("Role"):
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key]
            assert not any("*" in item for item in rule[key])


def test_rbac_is_least_privilege() -> None:
    granted = _grouped("ClusterRole")
    identity = granted["linkerd-linkerd-identity"]
    assert identity == {
        ("authentication.k8s.io", "tokenreviews"): {"create"},
        ("", "events"): {"create", "patch"},
    }
    destination = granted["linkerd-linkerd-destination"]
    assert destination.pop(("", "events")) == {"create", "patch"}  # SEC-4 Events
    assert all(verbs == {"list", "watch"} for verbs in destination.values())
    assert ("", "secrets") not in destination
    assert ("discovery.k8s.io", "endpointslices") in destination
    assert ("split.smi-spec.io", "trafficsplits") in destination
    assert granted["linkerd-linkerd-proxy-injector"] == {("", "namespaces"): {"get"}}
    # No Secret of the control-plane namespace (the issuer's key lives there): link
    # credentials are granted by `multicluster install`, in linkerd-multicluster only.
    assert _grouped("Role") == {}


def _grouped(kind: str) -> dict[str, dict[tuple[str, str], set[str]]]:
    out: dict[str, dict[tuple[str, str], set[str]]] = {}
    for name, rule in _rules(kind):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault(name, {}).setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_bindings_tie_each_role_to_its_service_account() -> None:
    accounts = {d["metadata"]["name"] for d in DOCS if d["kind"] == "ServiceAccount"}
    for doc in DOCS:
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert doc["roleRef"]["name"] == doc["metadata"]["name"]
            (subject,) = doc["subjects"]
            assert subject["name"] in accounts
            assert subject["namespace"] == "linkerd"
    assert set(RULES) | set(NAMESPACED_RULES) == {"identity", "destination", "proxy-injector"}


def test_webhook_selectors_and_policies() -> None:
    (webhook,) = find(DOCS, "MutatingWebhookConfiguration", WEBHOOK_CONFIG)["webhooks"]
    disabled = {
        "key": "config.linkerd.io/admission-webhooks",
        "operator": "NotIn",
        "values": ["disabled"],
    }
    assert webhook["namespaceSelector"]["matchExpressions"] == [disabled]
    assert webhook["objectSelector"]["matchExpressions"] == [disabled]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["rules"][0]["resources"] == ["pods"]
    assert webhook["clientConfig"]["service"] == {
        "name": "linkerd-proxy-injector",
        "namespace": "linkerd",
        "path": "/",
        "port": 443,
    }


def test_webhook_ca_bundle_is_the_served_certificate() -> None:
    (webhook,) = find(DOCS, "MutatingWebhookConfiguration", WEBHOOK_CONFIG)["webhooks"]
    secret = find(DOCS, "Secret", WEBHOOK_SECRET)
    assert secret["type"] == "kubernetes.io/tls"
    bundle = base64.b64decode(webhook["clientConfig"]["caBundle"])
    assert bundle == _b64(secret, "tls.crt")
    cert = x509.load_pem_x509_certificate(bundle)
    key = load_pem_private_key(_b64(secret, "tls.key"), None)
    assert cert.public_key() == key.public_key()
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "linkerd-proxy-injector.linkerd.svc" in names.get_values_for_type(x509.DNSName)
    cert.verify_directly_issued_by(cert)


def test_issuer_secret_chains_to_the_trust_roots() -> None:
    roots = find(DOCS, "ConfigMap", "linkerd-identity-trust-roots")["data"]["ca-bundle.crt"]
    issuer = find(DOCS, "Secret", "linkerd-identity-issuer")
    assert issuer["type"] == "kubernetes.io/tls"
    assert _b64(issuer, "ca.crt").decode() == roots
    problems = check_issuer(
        PemFile("roots", roots.encode()),
        PemFile("crt", _b64(issuer, "tls.crt")),
        PemFile("key", _b64(issuer, "tls.key")),
        now=NOW,
    )
    assert problems == []


def test_linkerd_config_holds_the_values() -> None:
    values = Values(cluster_domain="target", default_inbound_policy="deny")
    config = find(rendered(values), "ConfigMap", "linkerd-config")
    tree = yaml.safe_load(config["data"]["values"])
    assert Values.from_config(tree) == values
    assert tree["clusterDomain"] == "target"
    assert tree["identityTrustDomain"] == ""
    assert tree["proxy"]["defaultInboundPolicy"] == "deny"
    assert tree["image"]["name"] == "isthmus/isthmus"


NOT_RUN_BY_INSTALL = {"service-mirror": "multicluster link", "pause": "multicluster install"}
"""Components whose Deployments other commands render; their flag contracts are tested there."""


def _parsers() -> list[Any]:
    found = []
    for component, module_name in c.COMPONENTS.items():
        if component in NOT_RUN_BY_INSTALL:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        parser = getattr(module, "_parser", None)
        if parser is not None:
            found.append(pytest.param(component, parser, id=component))
    return found


@pytest.mark.parametrize(("component", "parser"), _parsers())
def test_container_flags_parse_with_the_component(
    component: str, parser: Callable[[], Any]
) -> None:
    """The flag contract: what the manifests and injected pods pass, each component accepts."""
    commands = [
        container["command"]
        for doc in DOCS
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]
    injected, _ = inject_pod(inject_support.POD, {}, inject_support.CONFIG)
    spec = injected["spec"]
    commands += [c["command"] for c in spec.get("initContainers", []) if c.get("command")]
    commands += [c["command"] for c in spec["containers"] if c.get("command")]
    (command,) = [
        cmd for cmd in commands if cmd[:2] == ["isthmus", "component"] and cmd[2] == component
    ]
    parser().parse_args(command[3:])


def test_uninstall_lists_everything_in_a_safe_order() -> None:
    values = Values()
    refs = uninstall_objects(values)
    installed = render_install(values, identity_for(values), webhook_for(values))
    from mesh.crds import crds

    everything = {(d["kind"], d["metadata"]["name"]) for d in [*installed, *crds()]}
    assert {(r["kind"], r["metadata"]["name"]) for r in refs} == everything
    kinds = [r["kind"] for r in refs]
    assert kinds[0] == "MutatingWebhookConfiguration"
    assert kinds.index("Namespace") > max(
        i for i, r in enumerate(refs) if "namespace" in r["metadata"]
    )
    assert kinds[-1] == "CustomResourceDefinition"
    assert all(set(r) == {"apiVersion", "kind", "metadata"} for r in refs)


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_destination_and_policy_get_their_certificates_from_identity() -> None:
    """SEC-3: each serves as linkerd-destination's identity, asking identity with a token."""
    spec = find(DOCS, "Deployment", "linkerd-destination")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (token,) = volumes["identity-token"]["projected"]["sources"]
    assert token["serviceAccountToken"]["audience"] == "identity.l5d.io"
    assert spec["serviceAccountName"] == "linkerd-destination"
    for container in spec["containers"]:
        command = container["command"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        token_file = _flag(command, "--identity-token-file")
        assert token_file == f"{mounts['identity-token']}/{token['serviceAccountToken']['path']}"
        assert _flag(command, "--trust-anchors").startswith(mounts["trust-roots"] + "/")
        assert _flag(command, "--identity-name") == (
            "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
        )
        assert _flag(command, "--identity-svc-name") == (
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
        )
        assert _flag(command, "--identity-addr") == (
            "linkerd-identity-headless.linkerd.svc.cluster.local.:8080"
        )


def test_proxies_expect_the_names_the_control_plane_serves_as() -> None:
    """What the injector tells proxies to check is what each service's certificate names."""
    injected, _ = inject_pod(inject_support.POD, {}, inject_support.CONFIG)
    (proxy,) = [c for c in injected["spec"]["containers"] if c["name"] == "linkerd-proxy"]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    values = Values()
    assert env["LINKERD2_PROXY_IDENTITY_SVC_NAME"] == c.service_identity("linkerd-identity", values)
    destination = c.service_identity("linkerd-destination", values)
    assert env["LINKERD2_PROXY_DESTINATION_SVC_NAME"] == destination
    assert env["LINKERD2_PROXY_POLICY_SVC_NAME"] == destination
    spec = find(DOCS, "Deployment", "linkerd-destination")["spec"]["template"]["spec"]
    for container in spec["containers"]:
        assert _flag(container["command"], "--identity-name") == destination
