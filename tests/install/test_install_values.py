"""Install values: defaults, validation, ``--set``, and the ``linkerd-config`` round trip."""

from __future__ import annotations

import pytest

from mesh.install import Values
from mesh.install.values import SET_KEYS


def test_trust_domain_defaults_to_the_cluster_domain() -> None:
    assert Values().identity_trust_domain == "cluster.local"
    assert Values(cluster_domain="target").identity_trust_domain == "target"
    assert Values(cluster_domain="target", trust_domain="cluster.local").identity_trust_domain == (
        "cluster.local"
    )


def test_config_round_trips() -> None:
    values = Values(cluster_domain="source", trust_domain="td.example", proxy_uid=3000)
    assert Values.from_config(values.to_config()) == values
    assert set(SET_KEYS.values()) == {f for f in Values.__dataclass_fields__}


@pytest.mark.parametrize(
    ("setting", "attribute", "expected"),
    [
        ("clusterDomain=target", "cluster_domain", "target"),
        ("identityTrustDomain=example.org", "trust_domain", "example.org"),
        (
            "proxy.defaultInboundPolicy=all-authenticated",
            "default_inbound_policy",
            "all-authenticated",
        ),
        ("proxy.ports.admin=5191", "admin_port", 5191),
        ("proxyInit.ignoreOutboundPorts=4567,4568", "ignore_outbound_ports", "4567,4568"),
        ("image.version=dev", "image_tag", "dev"),
        ("controllerReplicas=3", "controller_replicas", 3),
    ],
)
def test_set_changes_one_value(setting: str, attribute: str, expected: object) -> None:
    assert getattr(Values().with_settings([setting]), attribute) == expected


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("nonsense=1", "unknown setting"),
        ("clusterDomain", "expected key=value"),
        ("clusterDomain=Not_A_Domain", "cluster domain"),
        ("proxy.defaultInboundPolicy=allow-all", "proxy.defaultInboundPolicy"),
        ("proxy.ports.admin=seventy", "must be an integer"),
        ("proxy.ports.admin=70000", "is not a port number"),
        ("clusterNetworks=10.0.0.0/33", "clusterNetworks"),
        ("proxy.opaquePorts=25,smtp", "proxy.opaquePorts"),
        ("image.pullPolicy=Sometimes", "image.pullPolicy"),
        ("identity.issuer.issuanceLifetime=a day", "issuanceLifetime"),
        ("controlPlaneNamespace=Linkerd", "control-plane namespace"),
        ("proxy.uid=0", "proxy.uid"),
    ],
)
def test_bad_settings_are_refused_with_the_key(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Values().with_settings([setting])


def test_later_settings_win() -> None:
    values = Values().with_settings(["clusterDomain=a", "clusterDomain=b"])
    assert values.cluster_domain == "b"


def test_unknown_config_keys_are_ignored_unless_strict() -> None:
    tree = {**Values().to_config(), "futureFeature": {"enabled": True}}
    with pytest.raises(ValueError, match="futureFeature"):
        Values.from_config(tree)
    assert Values.from_config(tree, strict=False) == Values()
