"""Mirror names and remote fq names round-trip (CONF-1, CONF-3)."""

from __future__ import annotations

import pytest

from mesh.k8s.objects import ObjectKey
from mesh.multicluster.mirror import naming


@pytest.mark.parametrize(
    ("service", "cluster"),
    [
        ("web", "east"),
        ("web-east", "east"),
        ("a", "b"),
        ("api-v2", "target-1"),
        ("x" * 50, "c" * 12),
    ],
)
def test_mirror_name_round_trips(service: str, cluster: str) -> None:
    mirror = naming.mirror_name(service, cluster)
    assert mirror == f"{service}-{cluster}"
    assert naming.remote_service_name(mirror, cluster) == service
    key = ObjectKey("shop", service)
    assert naming.remote_key(naming.mirror_key(key, cluster), cluster) == key


@pytest.mark.parametrize(
    ("mirror", "cluster"),
    [("web", "east"), ("east", "east"), ("-east", "east"), ("web-west", "east"), ("web-east", "")],
)
def test_names_that_are_not_mirrors_are_refused(mirror: str, cluster: str) -> None:
    assert naming.remote_service_name(mirror, cluster) is None


@pytest.mark.parametrize(
    ("service", "cluster"),
    [("x" * 60, "east"), ("Web", "east"), ("web", "East"), ("web", "ea_st")],
)
def test_invalid_mirror_names_raise(service: str, cluster: str) -> None:
    with pytest.raises(naming.InvalidName, match="not a valid DNS label"):
        naming.mirror_name(service, cluster)


@pytest.mark.parametrize(
    ("service", "ns", "domain"),
    [("web", "shop", "cluster.local"), ("a", "b", "east"), ("api", "prod", "east.example.com")],
)
def test_fq_name_round_trips(service: str, ns: str, domain: str) -> None:
    fq = naming.remote_fq_name(service, ns, domain)
    assert fq == f"{service}.{ns}.svc.{domain}"
    parsed = naming.parse_fq_name(fq)
    assert (parsed.service, parsed.namespace, parsed.domain) == (service, ns, domain)
    assert str(parsed) == fq


@pytest.mark.parametrize(
    "fq", ["web.shop", "web.shop.pod.local", "web..svc.local", "web.shop.svc."]
)
def test_bad_fq_names_raise(fq: str) -> None:
    with pytest.raises(naming.InvalidName):
        naming.parse_fq_name(fq)
