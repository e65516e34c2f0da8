"""SEC-5: which CRDs `install --crds` applies and `uninstall` deletes; the pinned upstream."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh.cli import main
from mesh.crds import crds, gateway_api
from mesh.crds.ownership import (
    BUNDLE_VERSION,
    MESH_LABEL,
    Action,
    Existing,
    bundle_version,
    decide,
    plan_deletes,
    plan_install,
)
from mesh.install import cli as install_cli
from mesh.install import load_all

GATEWAY = "httproutes.gateway.networking.k8s.io"
SERVERS = "servers.policy.linkerd.io"
OURS = {c["metadata"]["name"]: c for c in crds()}


def mine(name: str, **annotations: str) -> Existing:
    return Existing(name, {MESH_LABEL: "linkerd"}, annotations)


def foreign(name: str, version: str | None = None, **labels: str) -> Existing:
    return Existing(name, labels, {BUNDLE_VERSION: version} if version else {})


def test_the_gateway_crd_is_upstreams_pinned_file() -> None:
    doc = OURS[GATEWAY]
    assert doc["metadata"]["annotations"][BUNDLE_VERSION] == gateway_api.VERSION
    assert doc["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard"
    assert [v["name"] for v in doc["spec"]["versions"]] == ["v1", "v1beta1"]
    for name, digest in gateway_api.FILES.items():
        data = resources.files(gateway_api).joinpath(name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
    licence = resources.files(gateway_api).joinpath("LICENSE").read_text()
    assert "Apache License" in licence


def test_an_edited_upstream_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway_api._read.cache_clear()
    monkeypatch.setitem(gateway_api.FILES, next(iter(gateway_api.FILES)), "0" * 64)
    try:
        with pytest.raises(RuntimeError, match="not the pinned upstream file"):
            gateway_api.load()
    finally:
        gateway_api._read.cache_clear()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.2.1", (1, 2, 1, 1)),
        ("1.10.0", (1, 10, 0, 1)),
        ("v1.3.0-rc.1", (1, 3, 0, 0)),
        ("", None),
        ("latest", None),
    ],
)
def test_bundle_versions_compare_numerically(text: str, expected: object) -> None:
    assert bundle_version({BUNDLE_VERSION: text}) == expected


@pytest.mark.parametrize(
    ("name", "existing", "action"),
    [
        (GATEWAY, None, Action.CREATE),
        (GATEWAY, mine(GATEWAY, **{BUNDLE_VERSION: "v1.1.1"}), Action.UPDATE),
        (GATEWAY, mine(GATEWAY), Action.UPDATE),
        (GATEWAY, mine(GATEWAY, **{BUNDLE_VERSION: "v1.3.0"}), Action.LEAVE),
        (GATEWAY, foreign(GATEWAY, "v1.0.0"), Action.UPGRADE_FOREIGN),
        (GATEWAY, foreign(GATEWAY, "v1.2.1-rc.1"), Action.UPGRADE_FOREIGN),
        (GATEWAY, foreign(GATEWAY, gateway_api.VERSION), Action.LEAVE),
        (GATEWAY, foreign(GATEWAY, "v1.3.0"), Action.LEAVE),
        (GATEWAY, foreign(GATEWAY), Action.LEAVE),
        (GATEWAY, foreign(GATEWAY, "v1.0.0", **{MESH_LABEL: "other"}), Action.UPGRADE_FOREIGN),
        (SERVERS, None, Action.CREATE),
        (SERVERS, mine(SERVERS), Action.UPDATE),
        (SERVERS, foreign(SERVERS, **{MESH_LABEL: "other-mesh"}), Action.LEAVE),
        (SERVERS, foreign(SERVERS), Action.LEAVE),
    ],
)
def test_install_decisions(name: str, existing: Existing | None, action: Action) -> None:
    assert decide(OURS[name], existing, "linkerd").action is action


def test_an_upgraded_foreign_crd_stays_foreign() -> None:
    docs, decisions = plan_install(
        [OURS[GATEWAY]], {GATEWAY: foreign(GATEWAY, "v1.0.0", team="gw")}, "linkerd"
    )
    (doc,) = docs
    assert MESH_LABEL not in (doc["metadata"].get("labels") or {})
    assert "older than" in decisions[0].reason
    assert OURS[GATEWAY]["metadata"]["labels"][MESH_LABEL] == "linkerd", "the original changed"


def test_without_the_cluster_every_crd_is_applied_as_the_meshs() -> None:
    docs, _ = plan_install(OURS.values(), None, "linkerd")
    assert [d["metadata"]["name"] for d in docs] == list(OURS)
    assert all(d["metadata"]["labels"][MESH_LABEL] == "linkerd" for d in docs)


def test_uninstall_deletes_only_the_meshs_crds() -> None:
    existing = {
        SERVERS: mine(SERVERS),
        GATEWAY: foreign(GATEWAY, "v1.0.0"),
        "links.multicluster.linkerd.io": foreign(
            "links.multicluster.linkerd.io", **{MESH_LABEL: "x"}
        ),
    }
    deletes, notes = plan_deletes(
        [SERVERS, GATEWAY, "links.multicluster.linkerd.io", "absent.io"], existing, "linkerd"
    )
    assert deletes == [SERVERS]
    assert len(notes) == 2
    assert any(GATEWAY in n and "another owner" in n for n in notes)
    assert any("control plane in x" in n for n in notes)


def test_uninstall_without_the_cluster_deletes_no_crd() -> None:
    deletes, notes = plan_deletes([SERVERS, GATEWAY], None, "linkerd")
    assert deletes == []
    assert len(notes) == 2


def _run(
    monkeypatch: pytest.MonkeyPatch, existing: dict[str, Existing], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(install_cli, "existing_crds", lambda target: existing)
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_install_crds_leaves_a_newer_gateway_api_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = _run(monkeypatch, {GATEWAY: foreign(GATEWAY, "v1.3.0")}, "install", "--crds")
    assert code == 0, err
    names = [d["metadata"]["name"] for d in load_all(out)]
    assert GATEWAY not in names
    assert len(names) == len(OURS) - 1
    assert f"CRD {GATEWAY}: installed by another owner at v1.3.0" in err


def test_install_crds_upgrades_an_older_gateway_api_without_taking_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = _run(monkeypatch, {GATEWAY: foreign(GATEWAY, "v0.8.0")}, "install", "--crds")
    assert code == 0, err
    (doc,) = [d for d in load_all(out) if d["metadata"]["name"] == GATEWAY]
    assert MESH_LABEL not in (doc["metadata"].get("labels") or {})
    assert "upgraded, left theirs" in err


def test_uninstall_names_only_the_meshs_crds(monkeypatch: pytest.MonkeyPatch) -> None:
    existing = {name: mine(name) for name in OURS} | {GATEWAY: foreign(GATEWAY, "v1.2.1")}
    code, out, err = _run(monkeypatch, existing, "uninstall")
    assert code == 0, err
    named = {
        d["metadata"]["name"] for d in load_all(out) if d["kind"] == "CustomResourceDefinition"
    }
    assert named == set(OURS) - {GATEWAY}
    assert f"left CRD {GATEWAY}: not created by this mesh" in err


def test_an_unreachable_cluster_is_an_error_pointing_at_ignore_cluster(tmp_path: Path) -> None:
    missing = tmp_path / "no-kubeconfig"
    result = CliRunner().invoke(main, ["install", "--crds", "--kubeconfig", str(missing)])
    assert result.exit_code == 1
    assert "--ignore-cluster" in result.stderr
