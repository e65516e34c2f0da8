"""Links are read strictly: selectors (CONF-16), probe spec (CONF-10), exclusions (CONF-6)."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.multicluster.mirror.link import (
    LinkError,
    ProbeSpec,
    excluded,
    parse_duration,
    parse_link,
    parse_selector,
)
from tests.multicluster.mirror_support import GATEWAY_IDENTITY, link, link_obj


def test_a_rendered_link_parses() -> None:
    got = link(excludedLabels=["team"], excludedAnnotations=["example.com/*"])
    assert got.name == "east"
    assert got.target_cluster_name == "east"
    assert got.target_cluster_domain == "east.local"
    assert got.credentials_secret == "cluster-credentials-east"
    assert got.gateway_addresses == ("172.30.1.20", "172.30.1.3")
    assert got.gateway_port == 4143
    assert got.gateway_identity == GATEWAY_IDENTITY
    assert got.probe == ProbeSpec("/ready", 4191, 3.0, 30.0, 3)
    assert got.excluded_labels == ("team",)
    assert got.excluded_annotations == ("example.com/*",)
    assert got.has_gateway


def test_defaults_fill_an_absent_probe_spec_and_gateway() -> None:
    got = link(probeSpec=None, gatewayAddress="", gatewayPort=None)
    assert got.probe == ProbeSpec()
    assert not got.has_gateway


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (None, {"mirror.linkerd.io/exported": "true"}, False),
        ({}, {"mirror.linkerd.io/exported": "true"}, False),
        ({"matchLabels": {}}, {}, False),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        (
            {
                "matchLabels": {"x": "y"},
                "matchExpressions": [{"key": "a", "operator": "Exists"}],
            },
            {"a": "1"},
            False,
        ),
    ],
)
def test_selectors_match_as_kubernetes_and_empty_selects_nothing(
    selector: Any, labels: dict[str, str], matches: bool
) -> None:
    assert parse_selector(selector, "spec.selector").matches(labels) is matches


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"selector": "all"}, r"spec.selector must be a label selector"),
        ({"selector": {"matchLabel": {}}}, r"spec.selector has unknown fields"),
        ({"selector": {"matchLabels": {"a": 1}}}, r"spec.selector.matchLabels must map strings"),
        (
            {"selector": {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}},
            r"operator 'Like' is not one of",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            r"operator In needs values",
        ),
        (
            {
                "selector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                }
            },
            r"operator Exists takes no values",
        ),
        ({"remoteDiscoverySelector": []}, r"spec.remoteDiscoverySelector must be"),
        ({"targetClusterName": ""}, r"spec.targetClusterName must be a non-empty string"),
        ({"targetClusterDomain": None}, r"spec.targetClusterDomain"),
        ({"clusterCredentialsSecret": 3}, r"spec.clusterCredentialsSecret"),
        ({"gatewayPort": "http"}, r"spec.gatewayPort must be a number"),
        ({"gatewayPort": 70000}, r"spec.gatewayPort must be a number in 1..65535"),
        ({"gatewayAddress": ["1.2.3.4"]}, r"spec.gatewayAddress must be a comma-separated"),
        ({"probeSpec": {"period": "soon"}}, r"spec.probeSpec.period 'soon' is not a duration"),
        ({"probeSpec": {"timeout": "0s"}}, r"spec.probeSpec.timeout must be positive"),
        ({"probeSpec": {"failureThreshold": "0"}}, r"failureThreshold must be a number in 1..1000"),
        ({"probeSpec": {"path": "ready"}}, r"spec.probeSpec.path must start with '/'"),
        ({"excludedLabels": "team"}, r"spec.excludedLabels must be a list"),
    ],
)
def test_bad_links_name_the_field(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(LinkError, match=error):
        parse_link(link_obj(**spec))


def test_a_link_without_spec_is_refused() -> None:
    with pytest.raises(LinkError, match="spec is missing"):
        parse_link({"metadata": {"name": "east"}})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3s", 3.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2", 2.0),
        (5, 5.0),
        ("1.5s", 1.5),
    ],
)
def test_go_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text, "d") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "3x", "1m 3s", "-1s", "0", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(LinkError):
        parse_duration(text, "d")


@pytest.mark.parametrize(
    ("key", "patterns", "expected"),
    [
        ("team", ["team"], True),
        ("team2", ["team"], False),
        ("example.com/owner", ["example.com/*"], True),
        ("example.com", ["example.com/*"], False),
        ("sub.example.com/owner", ["example.com/*"], False),
        ("a/b", [], False),
    ],
)
def test_exclusions_are_exact_or_prefix_star(key: str, patterns: list[str], expected: bool) -> None:
    assert excluded(key, patterns) is expected
