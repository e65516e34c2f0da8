"""The checks over snapshots: a healthy install passes; each breakage fails with a hint."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest

from mesh.check import Access, ClusterSnapshot, DeploymentState, Result, Status
from mesh.check.checks import INSTALL_CHECKS, PRE_ACCESS, PRE_CHECKS, run_checks
from mesh.identity import create_anchor, create_issuer
from mesh.install import IdentityMaterial, Values, create_webhook_cert
from tests.check.support import healthy
from tests.install.support import NOW, identity_for

HEALTHY = healthy()

Change = Callable[[ClusterSnapshot], ClusterSnapshot]


def replace(**changes: object) -> Change:
    return lambda s: dataclasses.replace(s, **changes)  # type: ignore[arg-type]


def without(field: str, key: str) -> Change:
    def change(s: ClusterSnapshot) -> ClusterSnapshot:
        mapping = dict(getattr(s, field))
        del mapping[key]
        return dataclasses.replace(s, **{field: mapping})  # type: ignore[arg-type]

    return change


def with_item(field: str, key: str, value: object) -> Change:
    def change(s: ClusterSnapshot) -> ClusterSnapshot:
        return dataclasses.replace(s, **{field: {**getattr(s, field), key: value}})  # type: ignore[arg-type]

    return change


def secret_key(secret: str, key: str, value: bytes) -> Change:
    def change(s: ClusterSnapshot) -> ClusterSnapshot:
        data = {**s.secrets[secret], key: value}
        return dataclasses.replace(s, secrets={**s.secrets, secret: data})

    return change


def failures(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status is not Status.OK]


def test_a_healthy_install_passes_every_check() -> None:
    results = run_checks(INSTALL_CHECKS, HEALTHY)
    assert failures(results) == []
    descriptions = [r.description for r in results]
    assert "linkerd-identity deployment is ready" in descriptions
    assert "issuer certificate is valid and issued by the trust anchors" in descriptions
    assert "proxy-injector webhook caBundle matches its serving certificate" in descriptions


def _other_issuer() -> bytes:
    other = create_anchor("cluster.local", now=NOW)
    return create_issuer(other, "cluster.local", now=NOW).certificate_pem()


def _short_lived_issuer() -> IdentityMaterial:
    anchor = create_anchor("cluster.local", now=NOW)
    issuer = create_issuer(anchor, "cluster.local", now=NOW, validity=timedelta(days=30))
    return IdentityMaterial(anchor.certificate_pem(), issuer.certificate_pem(), issuer.key_pem())


_OTHER_WEBHOOK = create_webhook_cert("linkerd-proxy-injector", "linkerd", "cluster.local", now=NOW)
_OLD_WEBHOOK = create_webhook_cert(
    "linkerd-proxy-injector", "linkerd", "cluster.local", now=NOW, validity=timedelta(days=10)
)


BROKEN: list[tuple[str, Change, str, Status, str, str]] = [
    (
        "deployment not ready",
        with_item("deployments", "linkerd-identity", DeploymentState(1, 0)),
        "linkerd-identity deployment is ready",
        Status.FAIL,
        "linkerd-identity deployment has 0/1 ready replicas",
        "kubectl -n linkerd describe deploy linkerd-identity",
    ),
    (
        "deployment missing",
        without("deployments", "linkerd-proxy-injector"),
        "linkerd-proxy-injector deployment is ready",
        Status.FAIL,
        "does not exist",
        "isthmus install",
    ),
    (
        "old kubernetes",
        replace(server_version="v1.20.4"),
        "is running the minimum Kubernetes API version",
        Status.FAIL,
        "v1.20.4",
        "upgrade",
    ),
    (
        "odd version",
        replace(server_version="unknown"),
        "is running the minimum Kubernetes API version",
        Status.WARN,
        "cannot read",
        "kubectl version",
    ),
    (
        "crd missing",
        without("crds", "httproutes.gateway.networking.k8s.io"),
        "control plane CustomResourceDefinitions exist",
        Status.FAIL,
        "httproutes.gateway.networking.k8s.io is missing",
        "isthmus install --crds | kubectl apply -f -",
    ),
    (
        "crd version missing",
        with_item("crds", "trafficsplits.split.smi-spec.io", ("v1alpha2",)),
        "control plane CustomResourceDefinitions exist",
        Status.FAIL,
        "does not serve v1alpha1",
        "isthmus install --crds",
    ),
    (
        "namespace missing",
        replace(namespace_exists=False),
        "control plane namespace exists",
        Status.FAIL,
        "namespace linkerd does not exist",
        "isthmus install",
    ),
    (
        "config missing",
        without("config_maps", "linkerd-config"),
        "'linkerd-config' config map exists",
        Status.FAIL,
        "does not exist",
        "isthmus install",
    ),
    (
        "trust roots missing",
        without("config_maps", "linkerd-identity-trust-roots"),
        "trust roots config map exists",
        Status.FAIL,
        "linkerd-identity-trust-roots",
        "re-apply",
    ),
    (
        "trust roots garbage",
        with_item("config_maps", "linkerd-identity-trust-roots", {"ca-bundle.crt": "nope"}),
        "trust anchors are valid",
        Status.FAIL,
        "no CERTIFICATE block",
        "kubectl -n linkerd get configmap linkerd-identity-trust-roots",
    ),
    (
        "trust roots expired",
        replace(now=NOW + timedelta(days=3660 + 365 * 10)),
        "trust anchors are valid",
        Status.FAIL,
        "expired",
        "--identity-trust-anchors-file",
    ),
    (
        "issuer secret missing",
        without("secrets", "linkerd-identity-issuer"),
        "issuer secret exists",
        Status.FAIL,
        "does not exist",
        "re-apply",
    ),
    (
        "issuer from another anchor",
        secret_key("linkerd-identity-issuer", "tls.crt", _other_issuer()),
        "issuer certificate is valid and issued by the trust anchors",
        Status.FAIL,
        "broken chain",
        "isthmus identity create-issuer",
    ),
    (
        "issuer expiring soon",
        lambda s: healthy(identity=_short_lived_issuer()),
        "issuer certificate is valid for at least 60 days",
        Status.WARN,
        "days left",
        "rotate the issuer",
    ),
    (
        "webhook config missing",
        without("webhook_ca_bundles", "linkerd-proxy-injector-webhook-config"),
        "proxy-injector webhook configuration exists",
        Status.FAIL,
        "does not exist",
        "re-apply",
    ),
    (
        "webhook caBundle of another cert",
        with_item(
            "webhook_ca_bundles", "linkerd-proxy-injector-webhook-config", _OTHER_WEBHOOK.cert_pem
        ),
        "proxy-injector webhook caBundle matches its serving certificate",
        Status.FAIL,
        "does not verify",
        "same install",
    ),
    (
        "webhook secret missing",
        without("secrets", "linkerd-proxy-injector-k8s-tls"),
        "proxy-injector webhook caBundle matches its serving certificate",
        Status.FAIL,
        "does not exist",
        "re-apply",
    ),
    (
        "webhook cert expiring soon",
        lambda s: healthy(webhook=_OLD_WEBHOOK),
        "proxy-injector certificate is valid for at least 60 days",
        Status.WARN,
        "days left",
        "renew",
    ),
]


@pytest.mark.parametrize(
    ("change", "description", "status", "message", "hint"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN],
)
def test_each_breakage_is_reported_with_a_hint(
    change: Change, description: str, status: Status, message: str, hint: str
) -> None:
    results = run_checks(INSTALL_CHECKS, change(HEALTHY))
    (problem,) = [r for r in failures(results) if r.description == description]
    assert problem.status is status
    assert message in problem.message
    assert hint in problem.hint


def test_only_starting_pods_are_retryable() -> None:
    starting = with_item("deployments", "linkerd-identity", DeploymentState(1, 0))(HEALTHY)
    assert all(r.retryable for r in failures(run_checks(INSTALL_CHECKS, starting)))
    gone = without("secrets", "linkerd-identity-issuer")(HEALTHY)
    assert not any(r.retryable for r in failures(run_checks(INSTALL_CHECKS, gone)))


def test_an_unreachable_api_stops_the_checks() -> None:
    broken = dataclasses.replace(HEALTHY, api_error="connection refused")
    (result,) = run_checks(INSTALL_CHECKS, broken)
    assert result.description == "can query the Kubernetes API"
    assert result.status is Status.FAIL
    assert result.message == "connection refused"
    assert "kubectl cluster-info" in result.hint


def _pre(**changes: object) -> ClusterSnapshot:
    base = ClusterSnapshot(
        now=NOW,
        server_version="v1.35.4",
        namespace_exists=False,
        access={access: True for access in PRE_ACCESS},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_pre_checks_pass_on_an_empty_cluster() -> None:
    assert failures(run_checks(PRE_CHECKS, _pre())) == []


def test_pre_checks_report_missing_rights() -> None:
    denied = Access("create", "apiextensions.k8s.io", "customresourcedefinitions")
    snapshot = _pre(access={**{a: True for a in PRE_ACCESS}, denied: False})
    (problem,) = failures(run_checks(PRE_CHECKS, snapshot))
    assert problem.description == "can create customresourcedefinitions.apiextensions.k8s.io"
    assert (
        "kubectl auth can-i create customresourcedefinitions.apiextensions.k8s.io" in problem.hint
    )


@pytest.mark.parametrize(("exists", "status"), [(True, Status.FAIL), (None, Status.WARN)])
def test_pre_checks_want_no_existing_control_plane(exists: bool | None, status: Status) -> None:
    (problem,) = failures(run_checks(PRE_CHECKS, _pre(namespace_exists=exists)))
    assert problem.description == "control plane namespace does not already exist"
    assert problem.status is status


def test_snapshot_reflects_other_namespaces() -> None:
    values = Values(control_plane_ns="mesh")
    from mesh.install import render_install
    from tests.check.support import snapshot_of
    from tests.install.support import webhook_for

    docs = render_install(values, identity_for(values), webhook_for(values))
    results = run_checks(INSTALL_CHECKS, snapshot_of(docs, namespace="mesh"))
    failing = failures(results)
    assert [r.message for r in failing if "deployment" not in r.description] == []
