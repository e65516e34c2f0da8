"""The isthmus adapter's multicluster command lines and parsers, against a fake runner."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.adapters import MeshError
from harness.adapters.isthmus import Completed, IsthmusAdapter
from harness.adapters.multicluster import GatewayRow, link_conditions, parse_gateways
from harness.providers.base import Cluster

MC_INSTALL = """\
apiVersion: v1
kind: Namespace
metadata: {name: linkerd-multicluster}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: linkerd-gateway, namespace: linkerd-multicluster}
"""
LINK = """\
apiVersion: v1
kind: Secret
metadata: {name: cluster-credentials-target, namespace: linkerd-multicluster}
---
apiVersion: multicluster.linkerd.io/v1alpha3
kind: Link
metadata: {name: target, namespace: linkerd-multicluster}
spec: {probeSpec: {path: /ready}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: linkerd-service-mirror-target, namespace: linkerd-multicluster}
"""


@dataclass
class FakeRunner:
    """Answers by a word of the command line; fails loudly on anything unexpected."""

    answers: dict[str, Completed] = field(default_factory=dict)
    calls: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], input: str | None, timeout: float) -> Completed:
        argv = tuple(argv)
        self.calls.append((argv, input))
        for key, answer in self.answers.items():
            if key in argv:
                return Completed(argv, answer.returncode, answer.stdout, answer.stderr)
        raise AssertionError(f"unexpected command {argv}")


def ok(stdout: str = "", code: int = 0) -> Completed:
    return Completed((), code, stdout, "")


def cluster(name: str) -> Cluster:
    return Cluster(
        name=name,
        domain=name,
        trust_domain="root",
        kubeconfig=Path(f"/k/{name}.yaml"),
        context=name,
        api_server="https://10.0.0.1:6443",
    )


def adapter(tmp_path: Path, runner: FakeRunner) -> IsthmusAdapter:
    return IsthmusAdapter(
        tmp_path, runner=runner, isthmus=("isthmus",), kubectl=lambda c: "kubectl", image_tag="t1"
    )


def test_install_renders_applies_and_waits_for_the_gateway(tmp_path: Path) -> None:
    runner = FakeRunner({"install": ok(MC_INSTALL), "apply": ok(), "rollout": ok()})
    adapter(tmp_path, runner).multicluster_install(cluster("target"))
    (render, _), (apply, applied), (rollout, _) = runner.calls
    assert render[:3] == ("isthmus", "multicluster", "install")
    assert "--kubeconfig" in render
    assert render[render.index("--image-tag") + 1] == "t1"
    assert apply[:5] == ("kubectl", "--kubeconfig", "/k/target.yaml", "--context", "target")
    assert applied == MC_INSTALL
    assert "deployment/linkerd-gateway" in rollout
    objects = adapter(tmp_path, runner).multicluster_installed_objects(cluster("target"))
    assert [o.name for o in objects] == ["linkerd-multicluster", "linkerd-gateway"]


def test_link_renders_against_the_target_and_applies_to_the_source(tmp_path: Path) -> None:
    runner = FakeRunner({"link": ok(LINK), "apply": ok(), "rollout": ok()})

    def edit(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for d in docs:
            if d["kind"] == "Link":
                d["spec"]["probeSpec"]["path"] = "/nope"
        return docs

    record = adapter(tmp_path, runner).link(
        cluster("source"), cluster("target"), "target-x", ["--gateway-port=4143"], edit=edit
    )
    (render, _), (apply, applied), (rollout, _) = runner.calls
    assert "/k/target.yaml" in render
    assert "--cluster-name=target-x" in render
    assert "--gateway-port=4143" in render
    assert "/k/source.yaml" in apply
    assert applied is not None
    assert "path: /nope" in applied
    assert "deployment/linkerd-service-mirror-target-x" in rollout
    assert (record.source, record.target, record.name) == ("source", "target", "target-x")
    assert [o.kind for o in record.objects] == ["Secret", "Link", "Deployment"]
    saved = tmp_path / "source" / "link-target-x.yaml"
    assert saved.stat().st_mode & 0o077 == 0


def test_a_failing_link_command_raises_with_its_output(tmp_path: Path) -> None:
    runner = FakeRunner({"link": Completed((), 1, "", "cannot reach the API server")})
    with pytest.raises(MeshError, match="cannot reach the API server"):
        adapter(tmp_path, runner).link(cluster("source"), cluster("target"))


def test_unlink_deletes_what_unlink_prints(tmp_path: Path) -> None:
    runner = FakeRunner({"unlink": ok(LINK), "delete": ok()})
    adapter(tmp_path, runner).unlink(cluster("source"), "target")
    (render, _), (delete, fed) = runner.calls
    assert "--cluster-name=target" in render
    assert "/k/source.yaml" in render
    assert fed == LINK
    assert "--ignore-not-found" in delete


def test_export_refuses_an_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="unknown export mode"):
        adapter(tmp_path, FakeRunner()).export(None, "ns", "svc", "yes")  # type: ignore[arg-type]


def test_parse_gateways() -> None:
    text = "CLUSTER ALIVE NUM_SVC LATENCY\ntarget True 2 3ms\nwest False 0 -\n"
    assert parse_gateways(text) == [
        GatewayRow("target", "True", 2, "3ms"),
        GatewayRow("west", "False", 0, "-"),
    ]
    assert parse_gateways(text)[0].is_alive
    with pytest.raises(MeshError, match="header"):
        parse_gateways("NAME ALIVE\n")
    with pytest.raises(MeshError, match="not a number"):
        parse_gateways("CLUSTER ALIVE NUM_SVC LATENCY\nt True x 1ms\n")


def test_link_conditions_find_a_service_wherever_the_status_lists_it() -> None:
    link = {
        "status": {
            "mirrorServices": [
                {
                    "remoteRef": {"name": "web", "namespace": "shop"},
                    "localRef": {"name": "web-target", "namespace": "shop"},
                    "conditions": [{"type": "Mirrored", "status": "True"}],
                },
                {
                    "remoteRef": {"name": "db", "namespace": "shop"},
                    "conditions": [{"type": "Mirrored", "status": "False"}],
                },
            ]
        }
    }
    assert link_conditions(link, ["web"], "shop") == [{"type": "Mirrored", "status": "True"}]
    assert link_conditions(link, ["web-target"], "shop")[0]["status"] == "True"
    assert link_conditions(link, ["web"], "other") == []
    assert link_conditions({}, ["web"], "shop") == []
