"""``isthmus check``: the report's two forms, retrying while pods start, and the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator

import click
import pytest
from click.testing import CliRunner

from mesh.check import ClusterSnapshot, DeploymentState, Result, Status
from mesh.check import cli as check_cli
from mesh.check.checks import INSTALL_CHECKS
from mesh.check.cli import CheckSettings, converge
from mesh.check.report import render_json, render_text
from mesh.cli import main
from mesh.install.target import KubeTarget
from tests.check.support import healthy

HEALTHY = healthy()
STARTING = dataclasses.replace(
    HEALTHY, deployments={**HEALTHY.deployments, "linkerd-identity": DeploymentState(1, 0)}
)
BROKEN = dataclasses.replace(HEALTHY, namespace_exists=False)

RESULTS = [
    Result("kubernetes-api", "can query the Kubernetes API", Status.OK),
    Result("linkerd-identity", "issuer is fine", Status.WARN, "expires soon", "rotate it"),
    Result(
        "linkerd-existence", "x is ready", Status.FAIL, "x has 0/1 ready replicas", "describe x"
    ),
]


def test_text_report_groups_marks_and_hints() -> None:
    text = render_text(RESULTS)
    assert text.splitlines() == [
        "kubernetes-api",
        "--------------",
        "√ can query the Kubernetes API",
        "",
        "linkerd-identity",
        "----------------",
        "‼ issuer is fine",
        "    expires soon",
        "    try: rotate it",
        "",
        "linkerd-existence",
        "-----------------",
        "× x is ready",  # noqa: RUF001
        "    x has 0/1 ready replicas",
        "    try: describe x",
        "",
        "Status check results are ×",  # noqa: RUF001
    ]
    assert render_text(RESULTS[:2]).endswith("Status check results are √\n")


def test_json_report_has_linkerds_shape() -> None:
    report = json.loads(render_json(RESULTS))
    assert report["success"] is False
    assert [c["categoryName"] for c in report["categories"]] == [
        "kubernetes-api",
        "linkerd-identity",
        "linkerd-existence",
    ]
    assert report["categories"][2]["checks"] == [
        {
            "description": "x is ready",
            "result": "error",
            "error": "x has 0/1 ready replicas",
            "hint": "describe x",
        }
    ]
    assert report["categories"][0]["checks"] == [
        {"description": "can query the Kubernetes API", "result": "success"}
    ]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def snapshots(*items: ClusterSnapshot) -> Callable[[], ClusterSnapshot]:
    it: Iterator[ClusterSnapshot] = iter(items)
    return lambda: next(it)


def test_converge_retries_starting_pods_until_ready() -> None:
    time = FakeTime()
    results = converge(
        snapshots(STARTING, STARTING, HEALTHY),
        INSTALL_CHECKS,
        CheckSettings(wait=60, retry_interval=2),
        clock=time.clock,
        sleep=time.sleep,
    )
    assert all(r.status is Status.OK for r in results)
    assert time.slept == [2, 2]


def test_converge_gives_up_at_the_deadline() -> None:
    time = FakeTime()
    results = converge(
        lambda: STARTING,
        INSTALL_CHECKS,
        CheckSettings(wait=5, retry_interval=2),
        clock=time.clock,
        sleep=time.sleep,
    )
    assert any(r.status is Status.FAIL for r in results)
    assert time.slept == [2, 2]


def test_converge_does_not_wait_for_what_will_not_fix_itself() -> None:
    time = FakeTime()
    converge(lambda: BROKEN, INSTALL_CHECKS, CheckSettings(), clock=time.clock, sleep=time.sleep)
    assert time.slept == []


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> list[ClusterSnapshot]:
    """Replace the lightkube fetch (our seam) with snapshots from a list."""
    served: list[ClusterSnapshot] = []

    def fetcher(
        ctx: click.Context, target: KubeTarget, ns: str, pre: bool
    ) -> Callable[[], ClusterSnapshot]:
        assert target == KubeTarget(context="target", kubeconfig="/k")
        assert ns == "linkerd"
        return lambda: served.pop(0)

    monkeypatch.setattr(check_cli, "_fetcher", fetcher)
    return served


def test_cli_exits_0_when_healthy(fake_cluster: list[ClusterSnapshot]) -> None:
    fake_cluster.append(HEALTHY)
    result = CliRunner().invoke(
        main, ["--context", "target", "check", "--kubeconfig", "/k", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["success"] is True


def test_cli_exits_1_with_hints_when_broken(fake_cluster: list[ClusterSnapshot]) -> None:
    fake_cluster.append(STARTING)
    result = CliRunner().invoke(
        main, ["--kubeconfig", "/k", "check", "--context", "target", "--wait", "0"]
    )
    assert result.exit_code == 1
    assert "linkerd-identity deployment has 0/1 ready replicas" in result.stdout
    assert "kubectl -n linkerd describe deploy linkerd-identity" in result.stdout


def test_cli_reports_an_unusable_kubeconfig(tmp_path: object) -> None:
    result = CliRunner().invoke(
        main, ["check", "--kubeconfig", "/nonexistent/kubeconfig", "--wait", "0s"]
    )
    assert result.exit_code == 1
    assert "× can query the Kubernetes API" in result.stdout  # noqa: RUF001
    assert "cannot initialize the client" in result.stdout
