"""Environment resolution, as the upstream kubelet does it."""

from __future__ import annotations

import pytest

from harness.providers.netns.kubelet.envvars import (
    EnvInputs,
    MissingReference,
    expand,
    parse_quantity,
    pod_field,
    referenced_objects,
    resolve_env,
    service_env,
)
from harness.providers.netns.kubelet.kobjects import Container, Pod

POD: Pod = {
    "metadata": {
        "name": "web-0",
        "namespace": "shop",
        "uid": "1234-abcd",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"a": 'x"y'},
    },
    "spec": {"nodeName": "n1", "serviceAccountName": "web", "containers": []},
}
SVC = service_env("10.96.0.1", 443)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "alpha"),
        ("pre-$(A)-post", "pre-alpha-post"),
        ("$(A)$(B)", "alphabeta"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$alpha"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("end$", "end$"),
        ("$()", "$()"),
        ("no refs", "no refs"),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "alpha", "B": "beta"}) == expected


def test_values_expand_against_earlier_vars_and_service_vars_only() -> None:
    c: Container = {
        "name": "c",
        "env": [
            {"name": "FIRST", "value": "1"},
            {"name": "SECOND", "value": "$(FIRST)-$(THIRD)-$(KUBERNETES_SERVICE_HOST)"},
            {"name": "THIRD", "value": "3"},
        ],
    }
    env = resolve_env(POD, c, EnvInputs(service_env=SVC))
    assert env["SECOND"] == "1-$(THIRD)-10.96.0.1"


def test_field_refs_and_pod_ip() -> None:
    c: Container = {
        "name": "c",
        "env": [
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        ],
    }
    env = resolve_env(POD, c, EnvInputs(pod_ip="10.42.0.5", host_ip="172.18.0.2"))
    assert env == {
        "N": "web-0",
        "NS": "shop",
        "UID": "1234-abcd",
        "NODE": "n1",
        "SA": "web",
        "IP": "10.42.0.5",
        "HOST": "172.18.0.2",
        "APP": "web",
    }


def test_labels_render_like_the_downward_api() -> None:
    assert pod_field(POD, "metadata.labels") == 'app="web"\ntier="front"'
    assert pod_field(POD, "metadata.annotations") == 'a="x\\"y"'


def test_env_from_then_env_then_service_vars() -> None:
    c: Container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}}, {"prefix": "S_", "secretRef": {"name": "s"}}],
        "env": [{"name": "K", "value": "from-env"}],
    }
    inputs = EnvInputs(
        configmaps={"cm": {"K": b"from-cm", "L": b"l", "bad=key": b"x"}},
        secrets={"s": {"TOKEN": b"t0p"}},
        service_env={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "L": "svc"},
    )
    env = resolve_env(POD, c, inputs)
    assert env["K"] == "from-env"
    assert env["L"] == "l"
    assert env["S_TOKEN"] == "t0p"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert "bad=key" not in env


@pytest.mark.parametrize(
    ("var", "error"),
    [
        (
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}},
            'configmap "gone" not found',
        ),
        (
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nokey"}}},
            "couldn't find key nokey in configmap shop/cm",
        ),
        (
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}},
            'secret "gone" not found',
        ),
    ],
)
def test_missing_references_are_errors(var: dict[str, object], error: str) -> None:
    c: Container = {"name": "c", "env": [var]}  # type: ignore[list-item]
    with pytest.raises(MissingReference, match=error):
        resolve_env(
            POD, c, EnvInputs(configmaps={"cm": {"k": b"v"}, "gone": None}, secrets={"gone": None})
        )


def test_optional_missing_references_leave_the_variable_unset() -> None:
    c: Container = {
        "name": "c",
        "env": [
            {
                "name": "X",
                "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
            {
                "name": "Y",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "nokey", "optional": True}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "gone", "optional": True}}],
    }
    env = resolve_env(POD, c, EnvInputs(configmaps={"gone": None}, secrets={"s": {}}))
    assert "X" not in env
    assert "Y" not in env


def test_resource_field_refs() -> None:
    c: Container = {
        "name": "c",
        "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}},
        "env": [
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
        ],
    }
    env = resolve_env(POD, c, EnvInputs())
    assert (env["MEM"], env["CPU"], env["REQ"]) == ("128", "1", "0")


@pytest.mark.parametrize(("q", "value"), [("1", 1), ("100m", 0.1), ("2Ki", 2048), ("1G", 1e9)])
def test_parse_quantity(q: str, value: float) -> None:
    assert parse_quantity(q) == pytest.approx(value)


def test_service_env_has_the_docker_link_style_variables() -> None:
    assert SVC["KUBERNETES_SERVICE_PORT"] == "443"
    assert SVC["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    assert SVC["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"


def test_referenced_objects_covers_init_and_app_containers() -> None:
    pod: Pod = {
        "spec": {
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s1"}}]}],
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k"}}}
                    ],
                }
            ],
        }
    }
    assert referenced_objects(pod) == ({"cm1"}, {"s1"})
