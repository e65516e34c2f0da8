"""``isthmus inject`` through click's CliRunner, and the injector's command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh.cli import main
from mesh.inject.config import InjectConfig
from mesh.inject.server import main as injector_main
from mesh.install import Values, dump_all, load_all
from tests.inject.support import deployment

SEED = dump_all(
    [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mc-demo"}},
        deployment(),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bb", "namespace": "mc-demo"}},
    ]
)


def run(*args: str, stdin: str = SEED) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_stdin_is_annotated_like_linkerd_inject() -> None:
    code, out, err = run("inject", "-")
    assert code == 0
    ns, deploy, svc = load_all(out)
    assert ns["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}
    assert deploy["spec"]["template"]["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}
    assert svc == load_all(SEED)[2]
    assert 'deployment "bb" annotated' in err
    assert run("inject", stdin=SEED)[1] == out, "no file means stdin"


def test_manual_ignore_cluster_injects_and_is_idempotent(tmp_path: Path) -> None:
    anchors = tmp_path / "ca.crt"
    anchors.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    args = ["inject", "--manual", "--ignore-cluster", "--identity-trust-anchors-file", str(anchors)]
    code, once, err = run(*args, "--set", "clusterDomain=target", "-")
    assert code == 0, err
    deploy = load_all(once)[1]
    proxy = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"] == anchors.read_text()
    assert env["LINKERD2_PROXY_DESTINATION_SVC_ADDR"].endswith(".svc.target.:8086")
    code, twice, err = run(*args, "--set", "clusterDomain=target", "-", stdin=once)
    assert code == 0
    assert twice == once
    assert 'deployment "bb" unchanged: already injected' in err


def test_files_and_dash_f(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(SEED)
    code, out, _ = run("inject", "-f", str(path), stdin="")
    assert code == 0
    assert len(load_all(out)) == 3


def test_a_failed_workload_exits_1_after_printing(tmp_path: Path) -> None:
    bad = deployment(annotations={"config.linkerd.io/default-inbound-policy": "open"})
    code, out, err = run("inject", "--manual", "--ignore-cluster", "-", stdin=dump_all([bad]))
    assert code == 1
    assert load_all(out) == [bad]
    assert "failed: config.linkerd.io/default-inbound-policy" in err


def test_not_yaml_is_an_error() -> None:
    code, _, err = run("inject", "-", stdin="a: [\n")
    assert code == 1
    assert "not YAML" in err


def test_manual_without_a_reachable_cluster_fails_clearly(tmp_path: Path) -> None:
    code, _, err = run("--kubeconfig", str(tmp_path / "missing"), "inject", "--manual", "-")
    assert code == 1
    assert "cannot load the kubeconfig" in err


def test_config_reads_what_install_wrote() -> None:
    values = Values(cluster_domain="target", proxy_uid=3000)
    text = dump_all([values.to_config()])
    config = InjectConfig.from_texts(text, "PEM", "me")
    assert config.values == values
    with pytest.raises(ValueError, match="not a mapping"):
        InjectConfig.from_texts("- a\n", "PEM", "me")


def test_injector_refuses_unreadable_files(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(SystemExit, match="injector: "):
        injector_main(
            ["--tls-cert", missing, "--tls-key", missing, "--config", missing,
             "--trust-anchors", missing]
        )  # fmt: skip
