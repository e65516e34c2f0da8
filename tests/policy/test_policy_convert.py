"""From lightkube objects (generic resources, as the API serves them) to policy snapshots."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1

from mesh.policy import convert
from mesh.policy.resources import (
    AuthorizationPolicy,
    LabelSelector,
    MeshTLSAuthentication,
    Namespace,
    NetworkAuthentication,
    NetworkMatch,
    Requirement,
    ResourceRef,
    Server,
    ServerAuthorization,
)


def generic(resource: Any, name: str, spec: dict[str, Any], **meta: Any) -> Any:
    """A generic resource as lightkube builds it from the API's JSON."""
    return resource.from_dict(
        {
            "apiVersion": "policy.linkerd.io/v1",
            "kind": resource.__name__,
            "metadata": {"name": name, "namespace": "shop", **meta},
            "spec": spec,
        }
    )


def test_namespace() -> None:
    obj = core_v1.Namespace(
        metadata=ObjectMeta(
            name="shop",
            labels={"team": "a"},
            annotations={"config.linkerd.io/default-inbound-policy": "deny"},
        )
    )
    assert convert.namespace(obj) == Namespace(
        "shop", {"team": "a"}, {"config.linkerd.io/default-inbound-policy": "deny"}
    )


def test_server() -> None:
    obj = generic(
        convert.ServerResource,
        "web-http",
        {
            "podSelector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
            },
            "port": "http",
            "proxyProtocol": "HTTP/1",
            "accessPolicy": "all-authenticated",
        },
        labels={"tier": "front"},
        creationTimestamp="2025-01-01T00:00:00Z",
    )
    assert convert.server(obj) == Server(
        namespace="shop",
        name="web-http",
        port="http",
        pod_selector=LabelSelector({"app": "web"}, (Requirement("tier", "NotIn", ("db",)),)),
        proxy_protocol="HTTP/1",
        access_policy="all-authenticated",
        labels={"tier": "front"},
        created="2025-01-01T00:00:00Z",
    )


def test_server_defaults_and_external_workloads() -> None:
    plain = convert.server(generic(convert.ServerResource, "s", {"podSelector": {}, "port": 80}))
    assert (plain.port, plain.pod_selector, plain.proxy_protocol, plain.error) == (
        80,
        LabelSelector(),
        "unknown",
        "",
    )
    external = convert.server(
        generic(convert.ServerResource, "s", {"externalWorkloadSelector": {}, "port": 80})
    )
    assert external.pod_selector is None
    assert not external.error


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"podSelector": {}}, "spec.port"),
        ({"podSelector": {}, "port": 0}, "out of range"),
        ({"podSelector": {}, "port": 70000}, "out of range"),
        ({"port": 80}, "podSelector is missing"),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]}, "port": 80},
            "unknown operator",
        ),
        ({"podSelector": {"matchLabels": ["a"]}, "port": 80}, "not an object"),
    ],
)
def test_a_server_that_makes_no_sense_carries_the_reason(
    spec: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mesh.policy.convert"):
        got = convert.server(generic(convert.ServerResource, "bad", spec))
    assert (got.namespace, got.name) == ("shop", "bad")
    assert reason in got.error
    assert "Server shop/bad is ignored" in caplog.text


def test_authorization_policy() -> None:
    obj = generic(
        convert.AuthorizationPolicyResource,
        "web-authz",
        {
            "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web-http"},
            "requiredAuthenticationRefs": [
                {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "c"},
                {"kind": "ServiceAccount", "name": "gw", "namespace": "mc"},
            ],
        },
    )
    assert convert.authorization_policy(obj) == AuthorizationPolicy(
        "shop",
        "web-authz",
        ResourceRef("policy.linkerd.io", "Server", "web-http"),
        (
            ResourceRef("policy.linkerd.io", "MeshTLSAuthentication", "c"),
            ResourceRef("", "ServiceAccount", "gw", "mc"),
        ),
    )
    bad = convert.authorization_policy(
        generic(convert.AuthorizationPolicyResource, "x", {"targetRef": {"name": "web"}})
    )
    assert "targetRef.kind" in bad.error


def test_meshtls_authentication() -> None:
    obj = generic(
        convert.MeshTLSAuthenticationResource,
        "clients",
        {
            "identities": ["*.ops.serviceaccount.identity.linkerd.td"],
            "identityRefs": [{"kind": "ServiceAccount", "name": "client"}],
        },
    )
    assert convert.meshtls_authentication(obj) == MeshTLSAuthentication(
        "shop",
        "clients",
        ("*.ops.serviceaccount.identity.linkerd.td",),
        (ResourceRef("", "ServiceAccount", "client"),),
    )


def test_network_authentication() -> None:
    obj = generic(
        convert.NetworkAuthenticationResource,
        "office",
        {"networks": [{"cidr": "10.1.2.3/16", "except": ["10.1.9.0/24"]}, {"cidr": "fd00::1"}]},
    )
    assert convert.network_authentication(obj) == NetworkAuthentication(
        "shop",
        "office",
        (NetworkMatch("10.1.0.0/16", ("10.1.9.0/24",)), NetworkMatch("fd00::1/128")),
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"networks": []}, "empty"),
        ({"networks": [{"cidr": "ten"}]}, "does not appear to be"),
    ]
    for spec, reason in cases:
        got = convert.network_authentication(
            generic(convert.NetworkAuthenticationResource, "bad", spec)
        )
        assert reason in got.error


def test_server_authorization() -> None:
    obj = generic(
        convert.ServerAuthorizationResource,
        "web-saz",
        {
            "server": {"selector": {"matchLabels": {"tier": "front"}}},
            "client": {
                "networks": [{"cidr": "0.0.0.0/0"}],
                "meshTLS": {
                    "identities": ["*"],
                    "serviceAccounts": [{"name": "client"}, {"name": "gw", "namespace": "mc"}],
                },
            },
        },
    )
    assert convert.server_authorization(obj) == ServerAuthorization(
        "shop",
        "web-saz",
        server_selector=LabelSelector({"tier": "front"}),
        networks=(NetworkMatch("0.0.0.0/0"),),
        identities=("*",),
        service_accounts=(("", "client"), ("mc", "gw")),
    )
    tls = convert.server_authorization(
        generic(
            convert.ServerAuthorizationResource,
            "tls",
            {"server": {"name": "web-http"}, "client": {"meshTLS": {"unauthenticatedTLS": True}}},
        )
    )
    assert (tls.server_name, tls.tls_any, tls.unauthenticated) == ("web-http", True, False)
