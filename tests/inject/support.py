"""Pods, workloads and a mesh configuration for the injection tests."""

from __future__ import annotations

import copy
from typing import Any

from mesh.inject import InjectConfig
from mesh.install import Values

ANCHORS = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
CONFIG = InjectConfig(
    values=Values(image_tag="1.2.3"), trust_anchors_pem=ANCHORS, created_by="test"
)

POD: dict[str, Any] = {
    "metadata": {"labels": {"app": "bb"}},
    "spec": {
        "containers": [
            {
                "name": "terminus",
                "image": "buoyantio/bb:v0.0.6",
                "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}],
            }
        ]
    },
}


def pod(**metadata: Any) -> dict[str, Any]:
    """A copy of ``POD`` with ``metadata`` keys replaced."""
    result = copy.deepcopy(POD)
    result["metadata"].update(metadata)
    return result


def deployment(
    name: str = "bb", namespace: str = "mc-demo", **template_meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "bb"}},
            "template": pod(**template_meta),
        },
    }


def env(pod: dict[str, Any]) -> dict[str, str]:
    """The proxy container's plain env values."""
    proxy = pod["spec"]["containers"][0]
    assert proxy["name"] == "linkerd-proxy"
    return {e["name"]: e.get("value", "<ref>") for e in proxy["env"]}


def init_args(pod: dict[str, Any]) -> dict[str, str]:
    """The proxy-init flags as a mapping."""
    command = pod["spec"]["initContainers"][0]["command"]
    assert command[:3] == ["isthmus", "component", "proxy-init"]
    flags = command[3:]
    return dict(zip(flags[::2], flags[1::2], strict=True))
