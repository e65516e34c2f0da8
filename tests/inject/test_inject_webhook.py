"""The admission logic: who gets injected, and the response the API server receives."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from mesh.inject import admit, decide
from mesh.inject.jsonpatch import apply
from mesh.inject.webhook import ReviewError, effective_annotations, owner_of, parse_review
from tests.inject.support import CONFIG, pod

ENABLED = {"linkerd.io/inject": "enabled"}
DISABLED = {"linkerd.io/inject": "disabled"}


@pytest.mark.parametrize(
    ("pod_annotations", "ns_annotations", "namespace", "inject"),
    [
        ({}, {}, "app", False),
        ({}, ENABLED, "app", True),
        (ENABLED, {}, "app", True),
        ({"linkerd.io/inject": "ingress"}, {}, "app", True),
        (DISABLED, ENABLED, "app", False),
        (ENABLED, DISABLED, "app", True),
        ({}, DISABLED, "app", False),
        ({"linkerd.io/inject": "maybe"}, {}, "app", False),
        (ENABLED, ENABLED, "kube-system", False),
        (ENABLED, {}, "linkerd-multicluster", True),  # the multicluster gateway
    ],
)
def test_decision_table(
    pod_annotations: dict[str, str], ns_annotations: dict[str, str], namespace: str, inject: bool
) -> None:
    decision = decide(pod(annotations=pod_annotations), namespace, ns_annotations)
    assert decision.inject is inject
    assert decision.reason


def test_injected_and_host_network_pods_are_not_injected() -> None:
    host = pod(annotations=ENABLED)
    host["spec"]["hostNetwork"] = True
    assert decide(host, "app", {}).reason == "hostNetwork is enabled"
    already = pod(annotations=ENABLED)
    already["spec"]["containers"].insert(0, {"name": "linkerd-proxy"})
    assert decide(already, "app", {}).inject is False


def test_namespace_config_is_inherited_and_overridden() -> None:
    ns = {"config.linkerd.io/proxy-log-level": "debug", "linkerd.io/inject": "enabled", "x": "y"}
    own = pod(annotations={"config.linkerd.io/skip-inbound-ports": "1"})
    assert effective_annotations(own, ns) == {
        "config.linkerd.io/proxy-log-level": "debug",
        "config.linkerd.io/skip-inbound-ports": "1",
    }


@pytest.mark.parametrize(
    ("owners", "labels", "expected"),
    [
        (
            [{"kind": "ReplicaSet", "name": "bb-5d8f", "controller": True}],
            {"pod-template-hash": "5d8f"},
            ("Deployment", "bb"),
        ),
        ([{"kind": "ReplicaSet", "name": "rs", "controller": True}], {}, ("ReplicaSet", "rs")),
        ([{"kind": "StatefulSet", "name": "db", "controller": True}], {}, ("StatefulSet", "db")),
        ([{"kind": "StatefulSet", "name": "db"}], {}, None),
        ([{"kind": "Node", "name": "n", "controller": True}], {}, None),
        ([], {}, None),
    ],
)
def test_owner_of(owners: list[dict[str, Any]], labels: dict[str, str], expected: Any) -> None:
    assert owner_of(pod(ownerReferences=owners, labels=labels)) == expected


def request(obj: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "app",
        "object": obj,
        **overrides,
    }


def test_admit_answers_with_a_json_patch_that_injects() -> None:
    original = pod(
        generateName="bb-5d8f-",
        labels={"pod-template-hash": "5d8f"},
        ownerReferences=[{"kind": "ReplicaSet", "name": "bb-5d8f", "controller": True}],
    )
    review, decision = admit(request(original), ENABLED, CONFIG)
    assert decision.inject
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert review["kind"] == "AdmissionReview"
    response = review["response"]
    assert response["uid"] == "u-1"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patched = apply(original, json.loads(base64.b64decode(response["patch"])))
    assert patched["spec"]["containers"][0]["name"] == "linkerd-proxy"
    assert patched["metadata"]["labels"]["linkerd.io/proxy-deployment"] == "bb"
    assert patched["metadata"]["labels"]["linkerd.io/workload-ns"] == "app"


@pytest.mark.parametrize(
    ("req", "ns"),
    [
        (request(pod()), {}),
        (request(pod(), operation="UPDATE"), ENABLED),
        (request(pod(), resource={"resource": "deployments"}), ENABLED),
        (request(None), ENABLED),
    ],
)
def test_admit_allows_unchanged_when_not_injecting(req: dict[str, Any], ns: dict[str, str]) -> None:
    review, decision = admit(req, ns, CONFIG)
    assert not decision.inject
    assert review["response"] == {"uid": "u-1", "allowed": True}


def test_unreadable_namespace_allows_with_a_warning() -> None:
    review, decision = admit(request(pod()), None, CONFIG)
    assert not decision.inject
    assert review["response"]["allowed"] is True
    assert "could not read namespace app" in review["response"]["warnings"][0]
    review, decision = admit(request(pod(annotations=ENABLED)), None, CONFIG)
    assert decision.inject
    assert "patch" in review["response"]


def test_bad_annotation_allows_with_a_warning() -> None:
    bad = pod(annotations={**ENABLED, "config.linkerd.io/default-inbound-policy": "open"})
    review, decision = admit(request(bad), {}, CONFIG)
    assert not decision.inject
    assert review["response"]["allowed"] is True
    assert "patch" not in review["response"]
    assert "default-inbound-policy" in review["response"]["warnings"][0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "not an AdmissionReview"),
        (b'{"kind": "AdmissionReview"}', "no request uid"),
        (b'{"kind": "AdmissionReview", "request": {"uid": ""}}', "no request uid"),
    ],
)
def test_parse_review_errors(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        parse_review(body)
