"""``inject_documents``: every workload kind, lists, opt-outs, and idempotency."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mesh.inject import inject_documents
from mesh.inject.workloads import TEMPLATE_PATHS
from tests.inject.support import CONFIG, POD, deployment


def workload(kind: str, name: str = "w") -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    path = TEMPLATE_PATHS[kind]
    if not path:
        doc.update(copy.deepcopy(POD))
        doc["metadata"]["name"] = name
        return doc
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = copy.deepcopy(POD)
    return doc


def template(doc: dict[str, Any]) -> dict[str, Any]:
    node: Any = doc
    for key in TEMPLATE_PATHS[doc["kind"]]:
        node = node[key]
    return node  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", sorted(TEMPLATE_PATHS))
def test_every_workload_kind_is_injected_manually(kind: str) -> None:
    (out,), (outcome,) = inject_documents([workload(kind)], CONFIG, manual=True)
    assert outcome.result == "injected"
    containers = template(out)["spec"]["containers"]
    assert containers[0]["name"] == "linkerd-proxy"
    labels = template(out)["metadata"]["labels"]
    if kind != "Pod":
        assert any(key.startswith("linkerd.io/proxy-") for key in labels)


@pytest.mark.parametrize("kind", sorted(TEMPLATE_PATHS))
def test_every_workload_kind_is_annotated(kind: str) -> None:
    (out,), (outcome,) = inject_documents([workload(kind)], None, manual=False)
    assert outcome.result == "annotated"
    assert template(out)["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}
    assert len(template(out)["spec"]["containers"]) == 1


@pytest.mark.parametrize("manual", [False, True])
def test_twice_is_once(manual: bool) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mc-demo"}},
        deployment(),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bb"}},
    ]
    once, _ = inject_documents(docs, CONFIG, manual=manual)
    twice, outcomes = inject_documents(once, CONFIG, manual=manual)
    assert twice == once
    assert all(o.result == "unchanged" for o in outcomes)


def test_lists_are_walked() -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [deployment("a"), deployment("b")]}
    (out,), outcomes = inject_documents([doc], CONFIG, manual=True)
    assert [o.name for o in outcomes] == ["a", "b"]
    assert all(
        i["spec"]["template"]["spec"]["containers"][0]["name"] == "linkerd-proxy"
        for i in out["items"]
    )


@pytest.mark.parametrize("manual", [False, True])
@pytest.mark.parametrize("where", ["object", "template"])
def test_disabled_is_left_alone(manual: bool, where: str) -> None:
    doc = deployment()
    target = doc if where == "object" else doc["spec"]["template"]
    target["metadata"]["annotations"] = {"linkerd.io/inject": "disabled"}
    (out,), (outcome,) = inject_documents([doc], CONFIG, manual=manual)
    assert out == doc
    assert outcome.result == "skipped"
    assert "disabled" in outcome.reason


def test_template_enabled_wins_over_object_disabled() -> None:
    doc = deployment(annotations={"linkerd.io/inject": "enabled"})
    doc["metadata"]["annotations"] = {"linkerd.io/inject": "disabled"}
    (_, (outcome,)) = inject_documents([doc], CONFIG, manual=True)
    assert outcome.result == "injected"


def test_host_network_pods_are_skipped() -> None:
    doc = deployment()
    doc["spec"]["template"]["spec"]["hostNetwork"] = True
    (out,), (outcome,) = inject_documents([doc], CONFIG, manual=True)
    assert out == doc
    assert outcome.reason == "hostNetwork is enabled"


def test_namespaces_are_annotated_only_without_manual() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mc-demo"}}
    (out,), (outcome,) = inject_documents([ns], None, manual=False)
    assert out["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}
    assert str(outcome) == 'namespace "mc-demo" annotated'
    (out,), outcomes = inject_documents([ns], CONFIG, manual=True)
    assert out == ns
    assert outcomes == []


def test_other_objects_pass_through() -> None:
    docs: list[Any] = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bb"}},
        "text",
        None,
    ]
    out, outcomes = inject_documents(docs, CONFIG, manual=True)
    assert out == docs
    assert outcomes == []


def test_manual_uses_template_annotations_and_namespace() -> None:
    doc = deployment(annotations={"config.linkerd.io/skip-outbound-ports": "5432"})
    (out,), _ = inject_documents([doc], CONFIG, manual=True)
    tmpl = out["spec"]["template"]
    assert tmpl["metadata"]["labels"]["linkerd.io/workload-ns"] == "mc-demo"
    assert tmpl["metadata"]["labels"]["linkerd.io/proxy-deployment"] == "bb"
    assert "5432" in tmpl["spec"]["initContainers"][0]["command"]


def test_bad_annotations_fail_the_workload_not_the_stream() -> None:
    bad = deployment("bad", annotations={"config.linkerd.io/default-inbound-policy": "open"})
    out, outcomes = inject_documents([bad, deployment("good")], CONFIG, manual=True)
    assert [(o.name, o.result) for o in outcomes] == [("bad", "failed"), ("good", "injected")]
    assert out[0] == bad
    assert "default-inbound-policy" in outcomes[0].reason
