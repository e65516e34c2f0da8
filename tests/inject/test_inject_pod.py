"""``inject_pod``: what it adds, what annotations change, and that twice is once."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from mesh.inject import InjectConfig, InjectError, inject_pod, jsonpatch
from mesh.install import Values
from tests.inject.support import ANCHORS, CONFIG, POD, env, init_args, pod


def test_adds_proxy_first_init_first_volumes_annotations_labels() -> None:
    injected, ops = inject_pod(POD, {}, CONFIG, namespace="mc-demo", owner=("Deployment", "bb"))
    spec = injected["spec"]
    assert [c["name"] for c in spec["containers"]] == ["linkerd-proxy", "terminus"]
    assert [c["name"] for c in spec["initContainers"]] == ["linkerd-init"]
    assert {v["name"] for v in spec["volumes"]} == {
        "linkerd-identity-end-entity",
        "linkerd-identity-token",
        "linkerd-proxy-init-xtables-lock",
    }
    token = next(v for v in spec["volumes"] if v["name"] == "linkerd-identity-token")
    source = token["projected"]["sources"][0]["serviceAccountToken"]
    assert source["audience"] == "identity.l5d.io"
    assert injected["metadata"]["annotations"] == {
        "linkerd.io/created-by": "test",
        "linkerd.io/proxy-version": "1.2.3",
        "linkerd.io/identity-mode": "default",
        "linkerd.io/trust-root-sha256": injected["metadata"]["annotations"][
            "linkerd.io/trust-root-sha256"
        ],
    }
    assert injected["metadata"]["labels"] == {
        "app": "bb",
        "linkerd.io/control-plane-ns": "linkerd",
        "linkerd.io/workload-ns": "mc-demo",
        "linkerd.io/proxy-deployment": "bb",
    }
    assert jsonpatch.apply(POD, ops) == injected


def test_proxy_container_contract() -> None:
    injected, _ = inject_pod(POD, {}, CONFIG, namespace="mc-demo")
    proxy = injected["spec"]["containers"][0]
    assert proxy["image"] == "isthmus/isthmus:1.2.3"
    assert proxy["command"] == ["isthmus", "component", "proxy"]
    assert proxy["securityContext"]["runAsUser"] == 2102
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 4191}
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/live", "port": 4191}
    variables = env(injected)
    assert variables["LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"] == ANCHORS
    assert variables["LINKERD2_PROXY_IDENTITY_LOCAL_NAME"] == (
        "$(_pod_sa).$(_pod_ns).serviceaccount.identity.linkerd.cluster.local"
    )
    assert variables["LINKERD2_PROXY_DESTINATION_SVC_ADDR"] == (
        "linkerd-dst-headless.linkerd.svc.cluster.local.:8086"
    )
    assert (
        variables["LINKERD2_PROXY_POLICY_SVC_ADDR"]
        == "linkerd-policy.linkerd.svc.cluster.local.:8090"
    )
    assert variables["LINKERD2_PROXY_IDENTITY_SVC_ADDR"] == (
        "linkerd-identity-headless.linkerd.svc.cluster.local.:8080"
    )
    assert variables["LINKERD2_PROXY_INBOUND_PORTS"] == "8080,9090"
    assert variables["LINKERD2_PROXY_INBOUND_DEFAULT_POLICY"] == "all-unauthenticated"
    assert variables["LINKERD2_PROXY_INBOUND_LISTEN_ADDR"] == "0.0.0.0:4143"
    assert variables["LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR"] == "127.0.0.1:4140"
    assert variables["LINKERD2_PROXY_ADMIN_LISTEN_ADDR"] == "0.0.0.0:4191"
    assert variables["LINKERD2_PROXY_IDENTITY_TOKEN_FILE"].startswith(
        next(m["mountPath"] for m in proxy["volumeMounts"] if m["name"] == "linkerd-identity-token")
    )


def test_identity_ends_with_the_trust_domain_not_the_cluster_domain() -> None:
    """CONF-30: the cluster domain names services, the trust domain names identities."""
    values = Values(cluster_domain="source", trust_domain="cluster.local", control_plane_ns="mesh")
    config = InjectConfig(values=values, trust_anchors_pem=ANCHORS, created_by="test")
    variables = env(inject_pod(POD, {}, config)[0])
    assert variables["LINKERD2_PROXY_IDENTITY_LOCAL_NAME"] == (
        "$(_pod_sa).$(_pod_ns).serviceaccount.identity.mesh.cluster.local"
    )
    assert variables["LINKERD2_PROXY_DESTINATION_SVC_ADDR"] == (
        "linkerd-dst-headless.mesh.svc.source.:8086"
    )
    assert variables["LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES"] == "svc.source."


def test_env_references_only_earlier_variables() -> None:
    proxy = inject_pod(POD, {}, CONFIG)[0]["spec"]["containers"][0]
    defined: set[str] = set()
    for var in proxy["env"]:
        for ref in re.findall(r"\$\(([^)]+)\)", var.get("value", "")):
            assert ref in defined, f"{var['name']} refers to {ref} before it is defined"
        defined.add(var["name"])


def test_init_container_redirects_with_ports_skipped() -> None:
    injected, _ = inject_pod(POD, {}, CONFIG)
    init = injected["spec"]["initContainers"][0]
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    assert init["securityContext"]["runAsUser"] == 0
    assert init_args(injected) == {
        "--incoming-proxy-port": "4143",
        "--outgoing-proxy-port": "4140",
        "--proxy-uid": "2102",
        "--inbound-ports-to-ignore": "4190,4191",
        "--outbound-ports-to-ignore": "",
    }


@pytest.mark.parametrize(
    ("annotations", "check"),
    [
        (
            {"config.linkerd.io/skip-inbound-ports": "8081, 9000-9010"},
            lambda p: init_args(p)["--inbound-ports-to-ignore"] == "4190,4191,8081,9000-9010",
        ),
        (
            {"config.linkerd.io/skip-outbound-ports": "5432,3306"},
            lambda p: init_args(p)["--outbound-ports-to-ignore"] == "3306,5432",
        ),
        (
            {"config.linkerd.io/opaque-ports": "http,3306"},
            lambda p: (
                env(p)["LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION"] == "3306,8080"
            ),
        ),
        (
            {},
            lambda p: (
                env(p)["LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION"]
                == "25,587,3306,4444,5432,6379,9300,11211"
            ),
        ),
        (
            {"config.linkerd.io/default-inbound-policy": "deny"},
            lambda p: env(p)["LINKERD2_PROXY_INBOUND_DEFAULT_POLICY"] == "deny",
        ),
        (
            {"config.linkerd.io/proxy-log-level": "debug"},
            lambda p: env(p)["LINKERD2_PROXY_LOG"] == "debug",
        ),
        (
            {"config.linkerd.io/proxy-log-level": ""},
            lambda p: env(p)["LINKERD2_PROXY_LOG"] == "warn,linkerd=info",
        ),
        (
            {"config.linkerd.io/enable-gateway": "true"},
            lambda p: (
                env(p)["LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES"]
                == f"svc.{Values().cluster_domain}."
            ),
        ),
        (
            {"config.linkerd.io/enable-gateway": "false"},
            lambda p: "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES" not in env(p),
        ),
        ({}, lambda p: "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES" not in env(p)),
    ],
)
def test_annotations_configure_the_proxy(annotations: dict[str, str], check: Any) -> None:
    injected, _ = inject_pod(POD, annotations, CONFIG)
    assert check(injected)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"config.linkerd.io/default-inbound-policy": "allow"}, "default-inbound-policy"),
        ({"config.linkerd.io/skip-inbound-ports": "http"}, "skip-inbound-ports"),
        ({"config.linkerd.io/skip-outbound-ports": "99999"}, "skip-outbound-ports"),
        ({"config.linkerd.io/enable-gateway": "yes"}, "enable-gateway"),
    ],
)
def test_bad_annotations_are_refused(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(InjectError, match=message):
        inject_pod(POD, annotations, CONFIG)


def test_injecting_twice_is_injecting_once() -> None:
    once, ops = inject_pod(POD, {}, CONFIG)
    twice, more = inject_pod(once, {}, CONFIG)
    assert ops
    assert more == []
    assert twice == once


def test_input_is_not_modified() -> None:
    before = copy.deepcopy(POD)
    inject_pod(POD, {}, CONFIG)
    assert before == POD


def test_existing_lists_are_extended_not_replaced() -> None:
    original = pod()
    original["spec"]["initContainers"] = [{"name": "migrate", "image": "x"}]
    original["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    injected, ops = inject_pod(original, {}, CONFIG)
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["linkerd-init", "migrate"]
    assert injected["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}
    paths = [op["path"] for op in ops]
    assert "/spec/initContainers/0" in paths
    assert paths.count("/spec/volumes/-") == 3
    assert jsonpatch.apply(original, ops) == injected


def test_patch_escapes_annotation_keys_and_creates_missing_maps() -> None:
    with_annotations = pod(annotations={"a": "b"})
    _, ops = inject_pod(with_annotations, {}, CONFIG)
    assert {
        "op": "add",
        "path": "/metadata/annotations/linkerd.io~1proxy-version",
        "value": "1.2.3",
    } in ops
    bare: dict[str, Any] = {"spec": copy.deepcopy(POD["spec"])}
    injected, ops = inject_pod(bare, {}, CONFIG)
    assert ops[0] == {"op": "add", "path": "/metadata", "value": {}}
    assert jsonpatch.apply(bare, ops) == injected
    assert "linkerd.io/proxy-version" in injected["metadata"]["annotations"]


def test_a_pod_without_containers_is_refused() -> None:
    with pytest.raises(InjectError, match="no containers"):
        inject_pod({"metadata": {}, "spec": {}}, {}, CONFIG)
