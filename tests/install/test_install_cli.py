"""``isthmus install``, ``uninstall`` and ``component`` through click's CliRunner."""

from __future__ import annotations

import base64
import sys
import types
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh.cli import main
from mesh.install import components as c
from mesh.install import load_all
from tests.install.support import NOW, find, write_identity_files


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_install_crds_prints_only_crds() -> None:
    code, out, _ = run("install", "--crds", "--ignore-cluster")
    assert code == 0
    docs = load_all(out)
    assert {d["kind"] for d in docs} == {"CustomResourceDefinition"}
    assert len(docs) == 8, "the Link CRD is printed by multicluster install"


def test_install_generates_identity_and_says_so() -> None:
    code, out, err = run("install")
    assert code == 0
    assert "generated a new trust anchor" in err
    docs = load_all(out)
    assert find(docs, "Namespace", "linkerd")
    assert (
        "BEGIN CERTIFICATE"
        in find(docs, "ConfigMap", "linkerd-identity-trust-roots")["data"]["ca-bundle.crt"]
    )


def test_install_uses_the_given_files(tmp_path: Path) -> None:
    anchors, cert, key = write_identity_files(tmp_path, "target")
    code, out, err = run(
        "--context", "target",
        "install",
        "--cluster-domain", "target",
        "--identity-trust-anchors-file", str(anchors),
        "--identity-issuer-certificate-file", str(cert),
        "--identity-issuer-key-file", str(key),
        "--image-tag", "dev",
        "--set", "proxy.logLevel=debug",
    )  # fmt: skip
    assert code == 0, err
    assert "generated" not in err
    docs = load_all(out)
    roots = find(docs, "ConfigMap", "linkerd-identity-trust-roots")["data"]["ca-bundle.crt"]
    assert roots == anchors.read_text()
    issuer = find(docs, "Secret", "linkerd-identity-issuer")["data"]
    assert base64.b64decode(issuer["tls.crt"]) == cert.read_bytes()
    assert base64.b64decode(issuer["tls.key"]) == key.read_bytes()
    config = find(docs, "ConfigMap", "linkerd-config")["data"]["values"]
    assert "clusterDomain: target" in config
    assert "logLevel: debug" in config
    deploy = find(docs, "Deployment", "linkerd-identity")
    command = deploy["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--trust-domain") + 1] == "target"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "isthmus/isthmus:dev"


def test_an_issuer_named_for_another_trust_domain_is_accepted_with_a_note(tmp_path: Path) -> None:
    """The seeds install `--cluster-domain target` with certificates made for cluster.local."""
    anchors, cert, key = write_identity_files(tmp_path, "cluster.local")
    code, _, err = run(
        "install", "--cluster-domain", "target",
        "--identity-trust-anchors-file", str(anchors),
        "--identity-issuer-certificate-file", str(cert),
        "--identity-issuer-key-file", str(key),
    )  # fmt: skip
    assert code == 0
    assert "note:" in err
    assert "identity.linkerd.target" in err


def test_identity_flags_go_together(tmp_path: Path) -> None:
    anchors, _, _ = write_identity_files(tmp_path)
    code, out, err = run("install", "--identity-trust-anchors-file", str(anchors))
    assert code == 2
    assert out == ""
    assert "--identity-issuer-certificate-file" in err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"other_anchor": True}, "broken chain to the trust anchors"),
        (
            {"anchor_now": NOW - timedelta(days=400), "issuer_now": NOW - timedelta(days=400)},
            "expired",
        ),
    ],
)
def test_broken_identity_is_refused_naming_the_file(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    anchors, cert, key = write_identity_files(tmp_path, **kwargs)  # type: ignore[arg-type]
    code, out, err = run(
        "install",
        "--identity-trust-anchors-file", str(anchors),
        "--identity-issuer-certificate-file", str(cert),
        "--identity-issuer-key-file", str(key),
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert message in err
    assert str(cert) in err


def test_garbage_files_are_refused(tmp_path: Path) -> None:
    anchors, cert, key = write_identity_files(tmp_path)
    key.write_text("not a key\n")
    code, _, err = run(
        "install",
        "--identity-trust-anchors-file", str(anchors),
        "--identity-issuer-certificate-file", str(cert),
        "--identity-issuer-key-file", str(key),
    )  # fmt: skip
    assert code == 1
    assert f"{key}: unreadable PEM" in err


def test_bad_values_are_usage_errors() -> None:
    code, _, err = run("install", "--set", "proxy.defaultInboundPolicy=open")
    assert code == 2
    assert "proxy.defaultInboundPolicy" in err
    code, _, err = run("install", "--cluster-domain", "UPPER")
    assert code == 2


def test_uninstall_prints_references() -> None:
    code, out, _ = run("uninstall", "--control-plane-ns", "mesh", "--ignore-cluster")
    assert code == 0
    docs = load_all(out)
    assert docs[0]["kind"] == "MutatingWebhookConfiguration"
    assert "CustomResourceDefinition" not in {d["kind"] for d in docs}
    assert {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "mesh"}} in docs
    assert any(d["kind"] == "ClusterRole" for d in docs)


def test_component_runs_the_module_main(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Sequence[str] | None] = []
    module = types.ModuleType("fake_component")
    module.main = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_component", module)
    monkeypatch.setitem(c.COMPONENTS, "proxy", "fake_component")
    code, _, err = run("component", "proxy", "--flag", "value", "--help")
    assert code == 0, err
    assert calls == [["--flag", "value", "--help"]]


def test_a_missing_component_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(c.COMPONENTS, "policy", "mesh.does_not_exist.server")
    code, _, err = run("component", "policy", "--port", "8090")
    assert code == 1
    assert "component 'policy' is not available" in err
    assert "mesh.does_not_exist.server" in err


def test_component_is_hidden_and_checked() -> None:
    code, out, _ = run("--help")
    assert "component" not in out
    code, _, _ = run("component", "nonsense")
    assert code == 2
