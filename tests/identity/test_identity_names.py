"""Identity names: round trips, and clear refusals of what is not an identity."""

from __future__ import annotations

import re

import pytest

from mesh.identity import WorkloadIdentity, anchor_common_name, issuer_common_name, parse

ROUND_TRIPS = [
    pytest.param(
        "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
        WorkloadIdentity("web", "emojivoto", "linkerd", "cluster.local"),
        id="default-trust-domain",
    ),
    pytest.param(
        "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local",
        WorkloadIdentity("linkerd-gateway", "linkerd-multicluster", "linkerd", "cluster.local"),
        id="multicluster-gateway",
    ),
    pytest.param(
        "slow-cooker.mc-demo.serviceaccount.identity.linkerd.source",
        WorkloadIdentity("slow-cooker", "mc-demo", "linkerd", "source"),
        id="single-label-trust-domain",
    ),
    pytest.param(
        "default.ns-1.serviceaccount.identity.isthmus.east.example.com",
        WorkloadIdentity("default", "ns-1", "isthmus", "east.example.com"),
        id="dotted-trust-domain-other-control-plane",
    ),
    pytest.param(
        "0.1.serviceaccount.identity.linkerd.a",
        WorkloadIdentity("0", "1", "linkerd", "a"),
        id="shortest",
    ),
]


@pytest.mark.parametrize(("name", "identity"), ROUND_TRIPS)
def test_names_round_trip(name: str, identity: WorkloadIdentity) -> None:
    assert str(identity) == name
    assert parse(name) == identity
    assert parse(str(identity)) == identity


BAD_NAMES = [
    pytest.param("", "expected <sa>.<ns>.serviceaccount", id="empty"),
    pytest.param("web.emojivoto", "expected <sa>.<ns>.serviceaccount", id="too-short"),
    pytest.param(
        "web.emojivoto.serviceaccount.identity.linkerd", "expected <sa>", id="no-trust-domain"
    ),
    pytest.param(
        "web.emojivoto.sa.identity.linkerd.cluster.local", "expected <sa>", id="wrong-marker"
    ),
    pytest.param(
        "Web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
        "service account 'Web' is not a DNS-1123 label",
        id="upper-case",
    ),
    pytest.param(
        "web_1.emojivoto.serviceaccount.identity.linkerd.cluster.local",
        "service account 'web_1'",
        id="underscore",
    ),
    pytest.param(
        "web.-emojivoto.serviceaccount.identity.linkerd.cluster.local",
        "namespace '-emojivoto'",
        id="leading-hyphen",
    ),
    pytest.param(
        f"web.{'n' * 64}.serviceaccount.identity.linkerd.cluster.local",
        "longer than 63",
        id="label-too-long",
    ),
    pytest.param(
        "web.emojivoto.serviceaccount.identity.linkerd.cluster..local",
        "trust domain 'cluster..local' is not a DNS-1123 subdomain",
        id="empty-trust-domain-label",
    ),
    pytest.param(
        "web.emojivoto.serviceaccount.identity.linkerd.cluster.local.",
        "trust domain",
        id="trailing-dot",
    ),
    pytest.param(
        "web.emojivoto.serviceaccount.identity..cluster.local",
        "control-plane namespace is empty",
        id="empty-control-plane-ns",
    ),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_parse_refuses_with_a_reason(name: str, message: str) -> None:
    with pytest.raises(ValueError, match="not a workload identity") as caught:
        parse(name)
    assert message in str(caught.value)
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        pytest.param(("a.b", "ns", "linkerd", "td"), "service account 'a.b'", id="dotted-sa"),
        pytest.param(("sa", "", "linkerd", "td"), "namespace is empty", id="empty-ns"),
        pytest.param(("sa", "ns", "link.erd", "td"), "control-plane namespace", id="dotted-cp"),
        pytest.param(("sa", "ns", "linkerd", "TD"), "trust domain 'TD'", id="upper-td"),
        pytest.param(
            ("sa", "ns", "linkerd", ".".join(["d" * 60] * 4)),
            "longer than 253",
            id="identity-too-long",
        ),
    ],
)
def test_construction_validates(parts: tuple[str, str, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WorkloadIdentity(*parts)


def test_identities_are_frozen_and_hashable() -> None:
    identity = parse("web.emojivoto.serviceaccount.identity.linkerd.cluster.local")
    with pytest.raises(AttributeError):
        identity.namespace = "other"  # type: ignore[misc]
    assert {identity, parse(str(identity))} == {identity}


def test_ca_common_names() -> None:
    assert anchor_common_name("cluster.local") == "root.cluster.local"
    assert issuer_common_name("cluster.local") == "identity.linkerd.cluster.local"
    assert issuer_common_name("east.example", "isthmus") == "identity.isthmus.east.example"
    with pytest.raises(ValueError, match="trust domain"):
        issuer_common_name("Cluster.local")
