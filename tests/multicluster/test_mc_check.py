"""``check --multicluster`` (CONF-43): each failure names the link and what to fix."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import click
import pytest
from click.testing import CliRunner

from mesh.check import ClusterSnapshot, DeploymentState, Status
from mesh.check import cli as check_cli
from mesh.check.mcfetch import fetch_multicluster
from mesh.check.multicluster import (
    LinkState,
    MirrorState,
    MulticlusterSnapshot,
    multicluster_checks,
)
from mesh.cli import main
from mesh.identity import create_anchor
from mesh.install.target import KubeTarget
from mesh.multicluster import labels as mc
from mesh.multicluster.cli import kube
from mesh.multicluster.linking import (
    GatewayFacts,
    LinkOptions,
    credentials_kubeconfig,
    credentials_secret,
    link_object,
    service_mirror_objects,
)
from mesh.multicluster.render import REMOTE_ACCESS_RULES
from mesh.multicluster.values import McValues
from tests.check.support import healthy
from tests.install.support import NOW
from tests.multicluster.support import CA_PEM, Connector, FakeCluster, control_plane, installed, use

ANCHOR = create_anchor("cluster.local", now=NOW).certificate_pem()
OTHER_ANCHOR = create_anchor("cluster.local", now=NOW).certificate_pem()
GOOD_LINK = LinkState(
    name="east",
    target="east",
    gateway=True,
    credentials=True,
    remote_anchors=ANCHOR,
    controller=DeploymentState(1, 1),
    gateway_alive=True,
    mirrors={"shop/web-east": MirrorState(True, 1)},
)
GOOD = MulticlusterSnapshot(("v1alpha1", "v1alpha2", "v1alpha3"), ANCHOR, (GOOD_LINK,))


def link(**changes: object) -> MulticlusterSnapshot:
    return dataclasses.replace(GOOD, links=(dataclasses.replace(GOOD_LINK, **changes),))


def test_healthy_links_pass() -> None:
    results = multicluster_checks(GOOD)
    assert [r.description for r in results] == [
        "Link CRD exists",
        "Link east: credentials exist",
        "Link east: the target's API server answers to the credentials",
        "Link east: clusters share trust anchors",
        "Link east: mirror controller is running",
        "Link east: gateway is alive",
        "Link east: mirror services have endpoints",
    ]
    assert {r.status for r in results} == {Status.OK}
    assert {r.category for r in results} == {"linkerd-multicluster"}


@pytest.mark.parametrize(
    ("snapshot", "description", "status", "message", "hint", "retryable"),
    [
        (
            MulticlusterSnapshot(None),
            "Link CRD exists",
            Status.FAIL,
            "links.multicluster.linkerd.io is missing",
            "multicluster install",
            False,
        ),
        (
            MulticlusterSnapshot(("v1alpha1",)),
            "Link CRD exists",
            Status.FAIL,
            "does not serve v1alpha3",
            "multicluster install",
            False,
        ),
        (
            MulticlusterSnapshot(error="forbidden"),
            "can read the multicluster objects",
            Status.FAIL,
            "forbidden",
            "--context",
            False,
        ),
        (
            link(credentials=False),
            "Link east: credentials exist",
            Status.FAIL,
            "cluster-credentials-east",
            "multicluster link --cluster-name east",
            False,
        ),
        (
            link(remote_error="cannot reach the API server at https://10.9.9.9:6443: timed out"),
            "Link east: the target's API server answers to the credentials",
            Status.FAIL,
            "https://10.9.9.9:6443",
            "--api-server-address",
            False,
        ),
        (
            link(remote_anchors=OTHER_ANCHOR),
            "Link east: clusters share trust anchors",
            Status.FAIL,
            "share no certificate",
            "--identity-trust-anchors-file",
            False,
        ),
        (
            link(remote_anchors=None, remote_anchors_error="(403 forbidden)"),
            "Link east: clusters share trust anchors",
            Status.WARN,
            "403 forbidden",
            "multicluster install",
            False,
        ),
        (
            link(remote_anchors=b"garbage"),
            "Link east: clusters share trust anchors",
            Status.FAIL,
            "no CERTIFICATE block",
            "linkerd-identity-trust-roots",
            False,
        ),
        (
            link(controller=None),
            "Link east: mirror controller is running",
            Status.FAIL,
            "linkerd-service-mirror-east is missing",
            "multicluster link",
            False,
        ),
        (
            link(controller=DeploymentState(1, 0)),
            "Link east: mirror controller is running",
            Status.FAIL,
            "0/1 ready",
            "describe deploy/linkerd-service-mirror-east",
            True,
        ),
        (
            link(gateway_alive=False),
            "Link east: gateway is alive",
            Status.FAIL,
            "probes of east's gateway fail",
            "gatewayAddress",
            True,
        ),
        (
            link(gateway_alive=None, gateway_error="no ready mirror controller pod"),
            "Link east: gateway is alive",
            Status.FAIL,
            "no ready mirror controller pod",
            "logs deploy/linkerd-service-mirror-east",
            True,
        ),
        (
            link(mirrors={"shop/web-east": MirrorState(False, 0)}),
            "Link east: mirror services have endpoints",
            Status.FAIL,
            "no Endpoints: shop/web-east",
            "logs",
            True,
        ),
        (
            link(mirrors={"shop/web-east": MirrorState(True, 0)}),
            "Link east: mirror services have endpoints",
            Status.FAIL,
            "no ready addresses although the gateway is alive: shop/web-east",
            "logs",
            True,
        ),
    ],
)
def test_each_failure_names_what_to_fix(
    snapshot: MulticlusterSnapshot,
    description: str,
    status: Status,
    message: str,
    hint: str,
    retryable: bool,
) -> None:
    results = {r.description: r for r in multicluster_checks(snapshot)}
    result = results[description]
    assert result.status is status
    assert message in result.message
    assert hint in result.hint
    assert result.retryable is retryable


def test_unready_mirrors_are_expected_while_the_gateway_is_down() -> None:
    snapshot = link(gateway_alive=False, mirrors={"shop/web-east": MirrorState(True, 0)})
    results = {r.description: r for r in multicluster_checks(snapshot)}
    assert results["Link east: mirror services have endpoints"].status is Status.OK


def test_no_links_is_fine() -> None:
    results = multicluster_checks(dataclasses.replace(GOOD, links=()))
    assert [r.status for r in results] == [Status.OK, Status.OK]


# -- fetching through the seam ---------------------------------------------------------------

METRICS = '# TYPE gateway_alive gauge\ngateway_alive{target_cluster_name="east"} 1\n'


def source_with_link(anchors: bytes = ANCHOR) -> FakeCluster:
    values = McValues(image_tag="dev")
    options = LinkOptions("east")
    config = credentials_kubeconfig(
        cluster_name="east", server="https://172.30.25.2:6443", token="t", ca_data=CA_PEM
    )
    facts = GatewayFacts(("172.30.25.10",), 4143, "gw", "/ready", 4191, "3s")
    west = FakeCluster()
    west.add(*installed().objects.values(), *control_plane(anchors=anchors.decode()))
    deploy = service_mirror_objects(values, options)[-1]
    deploy["status"] = {"readyReplicas": 1}
    labels = {mc.CLUSTER_NAME: "east", mc.MIRRORED_SERVICE: "true"}
    west.add(
        credentials_secret(values, options, config),
        link_object(
            values,
            options,
            target_cluster_domain="cluster.local",
            target_control_plane_ns="linkerd",
            gateway=facts,
        ),
        deploy,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "mirror-east-1",
                "namespace": mc.NAMESPACE,
                "labels": {"component": "linkerd-service-mirror", mc.CLUSTER_NAME: "east"},
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web-east", "namespace": "shop", "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web-east", "namespace": "shop", "labels": labels},
            "subsets": [
                {"addresses": [{"ip": "172.30.25.10"}], "ports": [{"name": "http", "port": 4143}]}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "api-east",
                "namespace": "shop",
                "labels": {**labels, mc.REMOTE_DISCOVERY: "east"},
            },
        },
    )
    west.metrics[(mc.NAMESPACE, "mirror-east-1")] = METRICS
    return west


def east_remote(anchors: bytes = ANCHOR) -> FakeCluster:
    east = FakeCluster(server="https://172.30.25.2:6443").add(
        *control_plane(anchors=anchors.decode())
    )
    east.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "linkerd"}})
    return east


def test_fetch_reads_the_source_and_the_target_with_the_links_credentials() -> None:
    connector = Connector({}, remote=east_remote())
    snapshot = fetch_multicluster(source_with_link(), connector, control_plane_ns="linkerd")
    assert snapshot.error is None
    assert snapshot.link_crd_versions == ("v1alpha1", "v1alpha2", "v1alpha3")
    (state,) = snapshot.links
    assert state == LinkState(
        name="east",
        target="east",
        gateway=True,
        credentials=True,
        remote_anchors=ANCHOR,
        controller=DeploymentState(1, 1),
        gateway_alive=True,
        mirrors={"shop/web-east": MirrorState(True, 1)},
    )
    (used,) = connector.kubeconfigs
    assert used["users"][0]["user"]["token"] == "t"
    assert isinstance(connector.remote, FakeCluster)
    granted = {
        (r, v) for rule in REMOTE_ACCESS_RULES for r in rule["resources"] for v in rule["verbs"]
    }
    assert set(connector.remote.reads) <= granted, "the target is read within the token's rights"
    assert {r.status for r in multicluster_checks(snapshot)} == {Status.OK}


def test_fetch_reports_an_unreachable_target_per_link() -> None:
    connector = Connector({}, remote=kube.ClusterError("cannot reach the API server at x: refused"))
    (state,) = fetch_multicluster(source_with_link(), connector, control_plane_ns="linkerd").links
    assert state.remote_error == "cannot reach the API server at x: refused"


def test_fetch_without_the_extension() -> None:
    snapshot = fetch_multicluster(
        FakeCluster().add(*control_plane()), Connector({}), control_plane_ns="linkerd"
    )
    assert snapshot.link_crd_versions is None
    west = FakeCluster()
    west.error = kube.ClusterError("forbidden", 403)
    assert fetch_multicluster(west, Connector({}), control_plane_ns="linkerd").error == "forbidden"


def test_cli_check_multicluster(monkeypatch: pytest.MonkeyPatch) -> None:
    def fetcher(
        ctx: click.Context, target: KubeTarget, ns: str, pre: bool
    ) -> Callable[[], ClusterSnapshot]:
        return lambda: healthy()

    monkeypatch.setattr(check_cli, "_fetcher", fetcher)
    use(monkeypatch, Connector({"west": source_with_link(OTHER_ANCHOR)}, remote=east_remote()))
    result = CliRunner().invoke(
        main, ["--context", "west", "check", "--multicluster", "--wait", "0"]
    )
    assert result.exit_code == 1, result.output
    assert "linkerd-multicluster" in result.stdout
    assert "× Link east: clusters share trust anchors" in result.stdout  # noqa: RUF001
    assert "√ Link east: gateway is alive" in result.stdout
    use(monkeypatch, Connector({"west": source_with_link()}, remote=east_remote()))
    result = CliRunner().invoke(
        main, ["--context", "west", "check", "--multicluster", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    assert '"categoryName": "linkerd-multicluster"' in result.stdout


def test_multicluster_check_verb_runs_only_the_link_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def fetcher(
        ctx: click.Context, target: KubeTarget, ns: str, pre: bool
    ) -> Callable[[], ClusterSnapshot]:
        raise AssertionError("the control plane is not checked")

    monkeypatch.setattr(check_cli, "_fetcher", fetcher)
    use(monkeypatch, Connector({"west": source_with_link()}, remote=east_remote()))
    result = CliRunner().invoke(main, ["--context", "west", "mc", "check"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("linkerd-multicluster\n")
    use(monkeypatch, Connector({"west": FakeCluster()}))
    result = CliRunner().invoke(main, ["--context", "west", "multicluster", "check", "--wait", "0"])
    assert result.exit_code == 1
    assert "isthmus multicluster install | kubectl apply -f -" in result.stdout
