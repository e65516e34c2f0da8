"""Installing once per state dir: reuse, failures remembered per run, forgetting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.adapters import IssuerFiles, MeshError, SharedTrust, state
from harness.providers.base import Cluster


class FakeAdapter:
    name = "fake"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.installs: list[list[str]] = []

    def create_trust(self, clusters: Sequence[Cluster], directory: Path) -> SharedTrust:
        return SharedTrust(
            directory / "ca.crt",
            directory / "ca.key",
            {c.name: IssuerFiles(directory / f"{c.name}.crt", directory / "k") for c in clusters},
        )

    def install(self, clusters: Sequence[Cluster], trust: SharedTrust) -> None:
        self.installs.append([c.name for c in clusters])
        if self.fail:
            raise MeshError("destination never became ready")


def cluster(name: str) -> Cluster:
    return Cluster(name, name, name, Path("/k"), name, "https://192.0.2.1:6443")


def test_installs_once_then_reuses_the_record(tmp_path: Path) -> None:
    adapter = FakeAdapter()
    clusters = [cluster("a"), cluster("b")]
    first = state.ensure_installed(adapter, clusters, tmp_path, "run1")
    again = state.ensure_installed(adapter, clusters[:1], tmp_path, "run2")
    assert adapter.installs == [["a", "b"]]
    assert again == first
    assert first.issuer("b").cert == tmp_path / "trust" / "b.crt"


def test_a_new_cluster_or_another_adapter_installs_again(tmp_path: Path) -> None:
    adapter = FakeAdapter()
    state.ensure_installed(adapter, [cluster("a")], tmp_path, "r")
    state.ensure_installed(adapter, [cluster("a"), cluster("c")], tmp_path, "r")
    other = FakeAdapter()
    other.name = "other"
    state.ensure_installed(other, [cluster("a")], tmp_path, "r")
    assert adapter.installs == [["a"], ["a", "c"]]
    assert other.installs == [["a"]]


def test_a_failure_fails_the_rest_of_its_run_fast_and_a_later_run_retries(tmp_path: Path) -> None:
    broken = FakeAdapter(fail=True)
    for _ in range(2):
        with pytest.raises(MeshError, match="destination never became ready"):
            state.ensure_installed(broken, [cluster("a")], tmp_path, "run1")
    assert broken.installs == [["a"]]
    fixed = FakeAdapter()
    fixed.name = "fake"
    state.ensure_installed(fixed, [cluster("a")], tmp_path, "run2")
    assert fixed.installs == [["a"]]


def test_forget_makes_the_next_caller_install(tmp_path: Path) -> None:
    adapter = FakeAdapter()
    state.ensure_installed(adapter, [cluster("a")], tmp_path, "r")
    state.forget(tmp_path)
    state.forget(tmp_path)  # twice is fine
    state.ensure_installed(adapter, [cluster("a")], tmp_path, "r")
    assert adapter.installs == [["a"], ["a"]]


def test_a_cluster_brought_up_anew_under_the_same_name_gets_the_mesh_again(
    tmp_path: Path,
) -> None:
    adapter = FakeAdapter()
    state.ensure_installed(adapter, [cluster("a")], tmp_path, "r")
    again = Cluster("a", "a", "a", Path("/k"), "a", "https://192.0.2.9:6443")
    state.ensure_installed(adapter, [again], tmp_path, "r")
    assert adapter.installs == [["a"], ["a"]]
