"""Remote Service + Link -> the mirror Service and Endpoints (CONF-1..9, CONF-16), as tables."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.k8s.objects import ServicePort
from mesh.multicluster.mirror.desired import (
    EndpointsPort,
    Mode,
    Unmirrorable,
    mirror_endpoints,
    mirror_mode,
    mirror_service,
)
from tests.multicluster.mirror_support import GATEWAY_IDENTITY, link, remote_service

MIRROR_LABELS = {
    "mirror.linkerd.io/mirrored-service": "true",
    "mirror.linkerd.io/cluster-name": "east",
}


def test_the_mirror_is_svc_dash_cluster_in_the_same_namespace_with_its_marks() -> None:
    """CONF-1, CONF-2, CONF-3, CONF-4."""
    svc = mirror_service(remote_service(rv="4711"), link(), Mode.GATEWAY)
    assert (svc.namespace, svc.name) == ("shop", "web-east")
    assert svc.labels == MIRROR_LABELS
    assert svc.annotations == {
        "mirror.linkerd.io/remote-svc-fq-name": "web.shop.svc.east.local",
        "mirror.linkerd.io/remote-resource-version": "4711",
    }


def test_ports_are_copied_without_selector_node_port_or_cluster_ip() -> None:
    """CONF-5."""
    ports = (
        ServicePort(80, "http", "TCP", 8080),
        ServicePort(9090, "admin", "TCP", "admin-port"),
        ServicePort(53, "dns", "UDP", 53),
    )
    manifest = mirror_service(
        remote_service(ports=ports, type_="NodePort"), link(), Mode.GATEWAY
    ).manifest()
    assert manifest["spec"] == {
        "type": "ClusterIP",
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
            {"name": "admin", "protocol": "TCP", "port": 9090, "targetPort": "admin-port"},
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53},
        ],
    }


LABEL_CASES: list[
    tuple[str, dict[str, Any], dict[str, str], dict[str, str], dict[str, str], dict[str, str]]
] = [
    # case, link spec, remote labels and annotations, expected copied labels and annotations
    (
        "plain labels and annotations are copied",
        {},
        {"mirror.linkerd.io/exported": "true", "app": "web", "team": "a"},
        {"example.com/owner": "ops", "note": "hi"},
        {"app": "web", "team": "a"},
        {"example.com/owner": "ops", "note": "hi"},
    ),
    (
        "mirror.linkerd.io/ labels are never copied (no re-export)",
        {},
        {
            "mirror.linkerd.io/exported": "true",
            "mirror.linkerd.io/federated": "member",
            "app": "web",
        },
        {},
        {"app": "web"},
        {},
    ),
    (
        "topology annotations are never copied",
        {},
        {"mirror.linkerd.io/exported": "true"},
        {
            "service.kubernetes.io/topology-aware-hints": "auto",
            "service.kubernetes.io/topology-mode": "Auto",
            "keep": "me",
        },
        {},
        {"keep": "me"},
    ),
    (
        "exact and prefix exclusions",
        {"excludedLabels": ["team", "example.com/*"], "excludedAnnotations": ["note", "ops.io/*"]},
        {
            "mirror.linkerd.io/exported": "true",
            "team": "a",
            "example.com/x": "1",
            "example.com": "kept",
            "app": "web",
        },
        {"note": "x", "ops.io/a": "1", "ops.io/b": "2", "ops.iox/c": "3"},
        {"example.com": "kept", "app": "web"},
        {"ops.iox/c": "3"},
    ),
]


@pytest.mark.parametrize(
    ("spec", "remote_labels", "remote_annotations", "labels", "annotations"),
    [case[1:] for case in LABEL_CASES],
    ids=[case[0] for case in LABEL_CASES],
)
def test_labels_and_annotations(
    spec: dict[str, Any],
    remote_labels: dict[str, str],
    remote_annotations: dict[str, str],
    labels: dict[str, str],
    annotations: dict[str, str],
) -> None:
    """CONF-6, CONF-7."""
    remote = remote_service(labels=remote_labels, annotations=remote_annotations)
    svc = mirror_service(remote, link(**spec), Mode.GATEWAY)
    assert svc.labels == {**labels, **MIRROR_LABELS}
    fixed = {"mirror.linkerd.io/remote-svc-fq-name", "mirror.linkerd.io/remote-resource-version"}
    assert {k: v for k, v in svc.annotations.items() if k not in fixed} == annotations


MODE_CASES = [
    ("exported=true is gateway mode", {}, {"mirror.linkerd.io/exported": "true"}, Mode.GATEWAY),
    (
        "exported=remote-discovery is pod-to-pod",
        {},
        {"mirror.linkerd.io/exported": "remote-discovery"},
        Mode.REMOTE_DISCOVERY,
    ),
    ("unlabelled is not exported", {}, {"app": "web"}, None),
    ("exported=false is not exported", {}, {"mirror.linkerd.io/exported": "false"}, None),
    (
        "absent selector exports nothing",
        {"selector": None},
        {"mirror.linkerd.io/exported": "true"},
        None,
    ),
    (
        "empty selector exports nothing",
        {"selector": {}},
        {"mirror.linkerd.io/exported": "true"},
        None,
    ),
    (
        "a mirror is never mirrored again",
        {"selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
        {"app": "web", "mirror.linkerd.io/mirrored-service": "true"},
        None,
    ),
    (
        "custom selectors",
        {"selector": {"matchLabels": {"export": "yes"}}},
        {"export": "yes"},
        Mode.GATEWAY,
    ),
]


@pytest.mark.parametrize(
    ("spec", "remote_labels", "mode"),
    [c[1:] for c in MODE_CASES],
    ids=[c[0] for c in MODE_CASES],
)
def test_which_services_are_mirrored(
    spec: dict[str, Any], remote_labels: dict[str, str], mode: Mode | None
) -> None:
    """CONF-1, CONF-6, CONF-16."""
    assert mirror_mode(remote_service(labels=remote_labels), link(**spec)) is mode


def test_remote_discovery_mirrors_are_labelled_for_pod_to_pod() -> None:
    remote = remote_service(labels={"mirror.linkerd.io/exported": "remote-discovery"})
    svc = mirror_service(remote, link(), Mode.REMOTE_DISCOVERY)
    assert svc.labels == {
        **MIRROR_LABELS,
        "multicluster.linkerd.io/remote-discovery": "east",
        "multicluster.linkerd.io/remote-service": "web",
    }


@pytest.mark.parametrize(
    ("remote", "reason"),
    [
        (remote_service(name="x" * 60), "InvalidMirrorName"),
        (remote_service(ports=()), "NoPorts"),
        (remote_service(type_="ExternalName"), "UnsupportedServiceType"),
    ],
    ids=["name too long", "no ports", "ExternalName"],
)
def test_unmirrorable_services_say_why(remote: Any, reason: str) -> None:
    with pytest.raises(Unmirrorable) as info:
        mirror_service(remote, link(), Mode.GATEWAY)
    assert info.value.reason == reason


ENDPOINT_CASES = [
    # case, remote ready, gateway alive, ready addresses, not-ready addresses
    ("remote ready, gateway alive", True, True, ("172.30.1.3", "172.30.1.20"), ()),
    ("remote ready, gateway down", True, False, (), ("172.30.1.3", "172.30.1.20")),
    ("remote not ready: no subsets", False, True, (), ()),
    ("remote not ready, gateway down: no subsets", False, False, (), ()),
]


@pytest.mark.parametrize(
    ("remote_ready", "alive", "ready", "not_ready"),
    [c[1:] for c in ENDPOINT_CASES],
    ids=[c[0] for c in ENDPOINT_CASES],
)
def test_gateway_endpoints(
    remote_ready: bool, alive: bool, ready: tuple[str, ...], not_ready: tuple[str, ...]
) -> None:
    """CONF-8 (all gateway addresses, sorted; port names kept; gateway port), CONF-9, CONF-10."""
    lk = link()
    ports = (ServicePort(80, "http", "TCP", 8080), ServicePort(9090, "admin", "TCP", 9090))
    svc = mirror_service(remote_service(ports=ports), lk, Mode.GATEWAY)
    eps = mirror_endpoints(
        svc, lk, ("172.30.1.20", "172.30.1.3"), remote_ready=remote_ready, gateway_alive=alive
    )
    assert (eps.namespace, eps.name) == ("shop", "web-east")
    assert eps.labels == svc.labels
    assert eps.annotations == {
        "mirror.linkerd.io/remote-gateway-identity": GATEWAY_IDENTITY,
        "mirror.linkerd.io/remote-svc-fq-name": "web.shop.svc.east.local",
    }
    assert (eps.ready, eps.not_ready) == (ready, not_ready)
    manifest = eps.manifest()
    if not ready and not not_ready:
        assert manifest["subsets"] == []
        return
    (subset,) = manifest["subsets"]
    assert subset["ports"] == [
        {"name": "http", "port": 4143, "protocol": "TCP"},
        {"name": "admin", "port": 4143, "protocol": "TCP"},
    ]
    assert [a["ip"] for a in subset.get("addresses", [])] == list(ready)
    assert [a["ip"] for a in subset.get("notReadyAddresses", [])] == list(not_ready)
    assert eps.ports == (EndpointsPort("http", 4143), EndpointsPort("admin", 4143))
