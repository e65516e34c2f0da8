"""The isthmus adapter's command lines, against a fake runner (the adapter's own seam)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.adapters import MeshError, ObjectRef, SharedTrust, get_adapter
from harness.adapters.isthmus import Completed, IsthmusAdapter
from harness.providers.base import Cluster

CRDS = """\
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servers.policy.linkerd.io
"""
INSTALL = """\
---
apiVersion: v1
kind: Namespace
metadata:
  name: linkerd
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: linkerd-identity
  namespace: linkerd
"""
CHECK_OK = json.dumps({"success": True, "categories": []})
CHECK_FAIL = json.dumps(
    {
        "success": False,
        "categories": [
            {
                "categoryName": "linkerd-existence",
                "checks": [
                    {"description": "identity ready", "result": "success"},
                    {
                        "description": "linkerd-destination deployment is ready",
                        "result": "error",
                        "error": "0/1 ready replicas",
                        "hint": "kubectl -n linkerd describe deploy linkerd-destination",
                    },
                ],
            }
        ],
    }
)


@dataclass
class FakeRunner:
    """Answers by the command's subcommand; fails loudly on anything unexpected."""

    answers: dict[str, Completed] = field(default_factory=dict)
    calls: list[tuple[tuple[str, ...], str | None, float]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], input: str | None, timeout: float) -> Completed:
        argv = tuple(argv)
        self.calls.append((argv, input, timeout))
        for key, answer in self.answers.items():
            if key in argv:
                return Completed(argv, answer.returncode, answer.stdout, answer.stderr)
        raise AssertionError(f"unexpected command {argv}")

    def commands(self) -> list[tuple[str, ...]]:
        return [c[0] for c in self.calls]


def ok(stdout: str = "", code: int = 0, stderr: str = "") -> Completed:
    return Completed((), code, stdout, stderr)


def cluster(name: str, domain: str | None = None, trust: str | None = None) -> Cluster:
    return Cluster(
        name=name,
        domain=domain or name,
        trust_domain=trust or domain or name,
        kubeconfig=Path(f"/state/{name}.kubeconfig"),
        context=f"ctx-{name}",
        api_server="https://192.0.2.1:6443",
        version="v1.35.4",
    )


def adapter(tmp_path: Path, runner: FakeRunner) -> IsthmusAdapter:
    return IsthmusAdapter(
        tmp_path / "work",
        runner=runner,
        isthmus=["isthmus"],
        kubectl=lambda c: f"/bin/kubectl-{c.version}",
        image_tag="t1",
    )


def trust(tmp_path: Path, *names: str) -> SharedTrust:
    return SharedTrust.from_dict(
        {
            "anchor_cert": str(tmp_path / "ca.crt"),
            "anchor_key": str(tmp_path / "ca.key"),
            "issuers": {
                n: {"cert": str(tmp_path / f"{n}.crt"), "key": str(tmp_path / f"{n}.key")}
                for n in names
            },
        }
    )


def test_create_trust_makes_one_anchor_and_an_issuer_per_cluster(tmp_path: Path) -> None:
    runner = FakeRunner({"create-anchor": ok(), "create-issuer": ok()})
    a = adapter(tmp_path, runner)
    result = a.create_trust([cluster("target"), cluster("source", trust="src.example")], tmp_path)
    anchor, *issuers = runner.commands()
    assert anchor == (
        "isthmus", "identity", "create-anchor", "--trust-domain", "target",
        "--out-dir", str(tmp_path / "anchor"), "--force",
    )  # fmt: skip
    assert [c[c.index("--trust-domain") + 1] for c in issuers] == ["target", "src.example"]
    assert all(c[c.index("--anchor-cert") + 1] == str(tmp_path / "anchor/ca.crt") for c in issuers)
    assert all(c[c.index("--control-plane-ns") + 1] == "linkerd" for c in issuers)
    assert result.issuer("source").cert == tmp_path / "issuers/source/issuer.crt"
    assert result.anchor_key == tmp_path / "anchor/ca.key"


def test_create_trust_keeps_files_already_there(tmp_path: Path) -> None:
    for p in ("anchor/ca.crt", "anchor/ca.key", "issuers/target/issuer.crt"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
    runner = FakeRunner({"create-issuer": ok()})
    adapter(tmp_path, runner).create_trust([cluster("target")], tmp_path)
    assert [c[2] for c in runner.commands()] == ["create-issuer"]  # the key was missing


def test_install_applies_crds_then_control_plane_server_side_and_waits_with_check(
    tmp_path: Path,
) -> None:
    runner = FakeRunner(
        {
            "--crds": ok(CRDS),
            "install": ok(INSTALL),
            "apply": ok(),
            "get": ok(""),
            "check": ok(CHECK_OK),
        }
    )
    a = adapter(tmp_path, runner)
    c = cluster("target", domain="target.local", trust="td.example")
    a.install([c], trust(tmp_path, "target"))
    crds, apply_crds, install, _, apply_plane, check = runner.calls
    assert crds[0] == (
        "isthmus", "install", "--crds",
        "--kubeconfig", "/state/target.kubeconfig", "--context", "ctx-target",
    )  # fmt: skip
    assert apply_crds[0] == (
        "/bin/kubectl-v1.35.4", "--kubeconfig", "/state/target.kubeconfig",
        "--context", "ctx-target", "apply", "--server-side", "--force-conflicts",
        "--field-manager=isthmus-harness", "-f", "-",
    )  # fmt: skip
    assert apply_crds[1] == CRDS
    assert install[0] == (
        "isthmus", "install",
        "--identity-trust-anchors-file", str(tmp_path / "ca.crt"),
        "--identity-issuer-certificate-file", str(tmp_path / "target.crt"),
        "--identity-issuer-key-file", str(tmp_path / "target.key"),
        "--cluster-domain", "target.local",
        "--identity-trust-domain", "td.example",
        "--image-tag", "t1",
    )  # fmt: skip
    assert apply_plane[1] == INSTALL
    assert check[0] == (
        "isthmus", "check", "--kubeconfig", "/state/target.kubeconfig", "--context",
        "ctx-target", "-o", "json", "--wait", "300s",
    )  # fmt: skip
    assert check[2] > 300  # the command's own timeout outlasts its --wait
    assert a.installed_objects(c) == [
        ObjectRef(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "servers.policy.linkerd.io"
        ),
        ObjectRef("v1", "Namespace", "linkerd"),
        ObjectRef("apps/v1", "Deployment", "linkerd-identity", "linkerd"),
    ]


def test_installing_over_an_earlier_install_restarts_the_control_plane(tmp_path: Path) -> None:
    runner = FakeRunner(
        {
            "--crds": ok(CRDS),
            "install": ok(INSTALL),
            "apply": ok(),
            "get": ok("namespace/linkerd\n"),
            "rollout": ok(),
            "check": ok(CHECK_OK),
        }
    )
    adapter(tmp_path, runner).install([cluster("target")], trust(tmp_path, "target"))
    commands = runner.commands()
    restart = commands.index(
        (
            "/bin/kubectl-v1.35.4", "--kubeconfig", "/state/target.kubeconfig",
            "--context", "ctx-target", "-n", "linkerd", "rollout", "restart", "deployment",
        )
    )  # fmt: skip
    applied = [i for i, c in enumerate(commands) if "apply" in c]
    assert restart > max(applied)  # after the new secrets are in place
    assert "check" in commands[restart + 1]


def test_install_reports_every_unhealthy_cluster(tmp_path: Path) -> None:
    runner = FakeRunner(
        {
            "--crds": ok(CRDS),
            "install": ok(INSTALL),
            "apply": ok(),
            "get": ok(""),
            "check": ok(CHECK_FAIL, 1),
        }
    )
    with pytest.raises(MeshError, match=r"\[target\].*destination deployment is ready.*0/1"):
        adapter(tmp_path, runner).install([cluster("target")], trust(tmp_path, "target"))


def test_failed_apply_names_the_cluster_command_and_output(tmp_path: Path) -> None:
    runner = FakeRunner({"--crds": ok(CRDS), "apply": ok(code=1, stderr="connection refused")})
    with pytest.raises(MeshError, match=r"\[target\] applying the CRDs: .*connection refused"):
        adapter(tmp_path, runner).install([cluster("target")], trust(tmp_path, "target"))


def test_install_without_an_issuer_for_the_cluster_fails_before_applying(tmp_path: Path) -> None:
    runner = FakeRunner({"--crds": ok(CRDS), "apply": ok()})
    with pytest.raises(MeshError, match="no issuer for cluster 'west'"):
        adapter(tmp_path, runner).install([cluster("west")], trust(tmp_path, "target"))


def test_check_parses_json_failures_and_non_json_output(tmp_path: Path) -> None:
    runner = FakeRunner({"check": ok(CHECK_FAIL, 1)})
    result = adapter(tmp_path, runner).check(cluster("target"))
    assert not result.success
    assert result.failures == (
        "linkerd-existence: linkerd-destination deployment is ready: 0/1 ready replicas "
        "(hint: kubectl -n linkerd describe deploy linkerd-destination)",
    )
    assert runner.calls[0][0][-2:] == ("--wait", "0s")
    crashed = FakeRunner({"check": ok("", 2, "Traceback: boom")})
    result = adapter(tmp_path, crashed).check(cluster("target"))
    assert not result.success
    assert "Traceback: boom" in result.failures[0]


def test_uninstall_pipes_uninstall_into_kubectl_delete(tmp_path: Path) -> None:
    runner = FakeRunner({"uninstall": ok("refs"), "delete": ok()})
    adapter(tmp_path, runner).uninstall(cluster("target"))
    (uninstall, _, _), (delete, given, timeout) = runner.calls
    assert uninstall[:2] == ("isthmus", "uninstall")
    assert uninstall[2:4] == ("--kubeconfig", "/state/target.kubeconfig")
    assert delete[5:] == (
        "delete",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=180s",
        "-f",
        "-",
    )
    assert given == "refs"
    assert timeout > 180


def test_installed_objects_without_a_record_says_so(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="no record of the install"):
        adapter(tmp_path, FakeRunner()).installed_objects(cluster("target"))


def test_registry_makes_adapters_by_name(tmp_path: Path) -> None:
    made = get_adapter("isthmus", tmp_path, image_tag="x")
    assert isinstance(made, IsthmusAdapter)
    assert made.image_tag == "x"
    with pytest.raises(MeshError, match="unknown mesh adapter 'istio'; choose one of: isthmus"):
        get_adapter("istio", tmp_path)


def test_shared_trust_round_trips_through_json(tmp_path: Path) -> None:
    t = trust(tmp_path, "a", "b")
    assert SharedTrust.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_inject_pipes_the_manifest_through_the_cli(tmp_path: Path) -> None:
    runner = FakeRunner({"inject": ok("injected: yes\n")})
    assert adapter(tmp_path, runner).inject("kind: Deployment\n") == "injected: yes\n"
    assert runner.calls == [(("isthmus", "inject", "-"), "kind: Deployment\n", pytest.approx(120))]


def test_inject_failure_says_what_the_cli_said(tmp_path: Path) -> None:
    runner = FakeRunner({"inject": ok(code=1, stderr="bad yaml")})
    with pytest.raises(MeshError, match="bad yaml"):
        adapter(tmp_path, runner).inject("{")
