"""Writing volumes atomically and renewing tokens, with a fake API at our seam."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.providers.netns.kubelet.config import KubeletTimings
from harness.providers.netns.kubelet.envvars import MissingReference
from harness.providers.netns.kubelet.kobjects import Pod
from harness.providers.netns.kubelet.volumeplan import FileEntry
from harness.providers.netns.kubelet.volumes import VolumeManager, write_atomic

POD: Pod = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
    "spec": {
        "serviceAccountName": "sa",
        "containers": [],
        "volumes": [
            {
                "name": "token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": "aud",
                                "expirationSeconds": 600,
                                "path": "token",
                            }
                        },
                        {"configMap": {"name": "kube-root-ca.crt"}},
                    ]
                },
            },
            {"name": "cfg", "configMap": {"name": "app"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    },
}


class FakeApi:
    """The parts of KubeApi a VolumeManager uses; anything else fails loudly."""

    def __init__(self) -> None:
        self.configmaps: dict[str, dict[str, bytes]] = {
            "kube-root-ca.crt": {"ca.crt": b"CA"},
            "app": {"a": b"1"},
        }
        self.token_requests: list[tuple[str, ...]] = []
        self.clock = 1000.0

    async def get_configmap(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.configmaps.get(name)

    async def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return None

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        seconds: int,
        pod_name: str,
        pod_uid: str,
    ) -> tuple[str, float]:
        self.token_requests.append((namespace, service_account, audience, pod_name, pod_uid))
        return f"token-{len(self.token_requests)}", self.clock + seconds

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"unexpected API call {name}")


def read(path: Path) -> str:
    return path.read_text()


def test_write_atomic_swaps_data_and_drops_stale_entries(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_atomic(target, {"a": FileEntry(b"1"), "dir/b": FileEntry(b"2", 0o600)})
    assert (target / "a").is_symlink()
    assert os.readlink(target / "a") == "..data/a"
    assert (target / "dir" / "b").read_text() == "2"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600
    first = os.readlink(target / "..data")
    write_atomic(target, {"a": FileEntry(b"one")})
    assert (target / "a").read_text() == "one"
    assert not (target / "dir").exists()
    assert os.readlink(target / "..data") != first
    assert sorted(p.name for p in target.iterdir() if p.name.startswith("..")) == sorted(
        ["..data", os.readlink(target / "..data")]
    )


async def test_tokens_are_bound_to_the_pod_and_renewed_at_80_percent(tmp_path: Path) -> None:
    api = FakeApi()
    vm = VolumeManager(api, POD, tmp_path, KubeletTimings())  # type: ignore[arg-type]
    vm.write(await vm.fetch_inputs(now=lambda: api.clock))
    assert read(tmp_path / "token" / "token") == "token-1"
    assert read(tmp_path / "token" / "ca.crt") == "CA"
    assert read(tmp_path / "cfg" / "a") == "1"
    assert (tmp_path / "scratch").stat().st_mode & 0o777 == 0o777
    assert api.token_requests == [("ns", "sa", "aud", "p", "u-1")]
    assert vm.next_token_renewal() == pytest.approx(1000 + 480)

    api.clock = 1000 + 479
    vm.write(await vm.fetch_inputs(now=lambda: api.clock))
    assert len(api.token_requests) == 1
    api.clock = 1000 + 481
    vm.write(await vm.fetch_inputs(now=lambda: api.clock))
    assert read(tmp_path / "token" / "token") == "token-2"


async def test_missing_configmap_names_the_volume_and_refresh_keeps_old_content(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    vm = VolumeManager(api, POD, tmp_path, KubeletTimings())  # type: ignore[arg-type]
    vm.write(await vm.fetch_inputs())
    del api.configmaps["app"]
    inputs = await vm.fetch_inputs()
    with pytest.raises(MissingReference, match='volume "cfg" : configmap "app" not found'):
        vm.write(inputs)
    vm.write(inputs, tolerate_missing=True)
    assert read(tmp_path / "cfg" / "a") == "1"


def test_paths_of_host_path_volumes(tmp_path: Path) -> None:
    pod: Pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"volumes": [{"name": "h", "hostPath": {"path": "/opt/data"}}]},
    }
    vm = VolumeManager(FakeApi(), pod, tmp_path, KubeletTimings())  # type: ignore[arg-type]
    assert vm.path("h") == Path("/opt/data")
    assert vm.path("other") == tmp_path / "other"
    assert vm.api_object_volumes() == set()
