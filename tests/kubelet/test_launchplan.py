"""Pod spec -> launch spec for one container."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from harness.providers.netns.kubelet.images import ImageNotRunnable, ImageRoots
from harness.providers.netns.kubelet.kobjects import Container, Pod
from harness.providers.netns.kubelet.launch import LaunchSpec, Mount
from harness.providers.netns.kubelet.launchplan import build_launch_spec, credentials

BIN = Path("/venv/bin")


def pod(containers: list[Container], **spec: object) -> Pod:
    raw = {
        "metadata": {"name": "web-0", "namespace": "ns", "uid": "u"},
        "spec": {"containers": containers, **spec},
    }
    return cast(Pod, raw)


def build(p: Pod, env: dict[str, str] | None = None) -> LaunchSpec:
    return build_launch_spec(
        p,
        p["spec"]["containers"][0],
        env or {},
        [Mount("/s/v", "/data")],
        scratch=Path("/s/scratch"),
        bin_dir=BIN,
        node_name="node-1",
        is_executable=lambda path: path.parent == BIN,
        which=lambda n: None,
        interpreter="/venv/bin/python",
    )


def test_testapp_server() -> None:
    spec = build(pod([{"name": "app", "image": "isthmus/testapps:dev", "args": ["server"]}]))
    assert spec.argv == ["/venv/bin/isthmus-testapp", "server"]
    assert spec.cwd == "/"
    assert spec.hostname == "web-0"
    assert spec.env["HOSTNAME"] == "web-0"
    assert spec.env["PATH"].startswith("/venv/bin:")
    assert spec.env["HOME"] == "/root"
    assert (spec.uid, spec.gid) == (None, None)
    assert spec.mounts == [Mount("/s/v", "/data")]
    assert spec.traverse == ["/venv/bin/isthmus-testapp", "/venv/bin/python"]


def test_args_expand_from_env_and_env_overrides_defaults() -> None:
    spec = build(
        pod(
            [
                {
                    "name": "app",
                    "image": "isthmus/isthmus",
                    "command": ["isthmus"],
                    "args": ["--id", "$(POD_NAME)", "$$(KEEP)"],
                    "workingDir": "/work",
                }
            ]
        ),
        env={"POD_NAME": "web-0", "HOME": "/home/app"},
    )
    assert spec.argv == ["/venv/bin/isthmus", "--id", "web-0", "$(KEEP)"]
    assert spec.env["HOME"] == "/home/app"
    assert spec.cwd == "/work"


@pytest.mark.parametrize(
    ("pod_sc", "container_sc", "expected"),
    [
        ({}, {}, (None, None, [])),
        ({"runAsUser": 1000}, {}, (1000, None, [])),
        ({"runAsUser": 1000, "runAsGroup": 1000}, {"runAsUser": 2102}, (2102, 1000, [])),
        ({"fsGroup": 5, "supplementalGroups": [7]}, {"runAsGroup": 3}, (None, 3, [7, 5])),
    ],
)
def test_credentials(
    pod_sc: dict[str, object], container_sc: dict[str, object], expected: tuple[object, ...]
) -> None:
    c: Container = {"name": "c", "securityContext": container_sc}  # type: ignore[typeddict-item]
    p = pod([c], securityContext=pod_sc)
    assert credentials(p, c) == expected


def test_non_root_user_gets_group_zero_and_slash_home() -> None:
    spec = build(
        pod([{"name": "proxy", "image": "isthmus/isthmus", "securityContext": {"runAsUser": 2102}}])
    )
    assert (spec.uid, spec.gid) == (2102, 0)
    assert spec.env["HOME"] == "/"


def test_host_network_pods_keep_the_node_hostname() -> None:
    spec = build(pod([{"name": "c", "image": "isthmus/isthmus"}], hostNetwork=True))
    assert spec.hostname == ""
    assert spec.env["HOSTNAME"] == "node-1"


def test_unknown_images_do_not_build() -> None:
    with pytest.raises(ImageNotRunnable):
        build(pod([{"name": "c", "image": "redis"}]))


def test_a_catalogued_image_brings_its_workdir_path_and_paths_before_volumes() -> None:
    p = pod([{"name": "c", "image": "stefanprodan/podinfo:6.7.0"}])
    spec = build_launch_spec(
        p,
        p["spec"]["containers"][0],
        {},
        [Mount("/s/v", "/home/app/data")],
        scratch=Path("/s/scratch"),
        bin_dir=BIN,
        node_name="node-1",
        is_executable=lambda path: True,
        which=lambda n: None,
        roots=ImageRoots(BIN, Path("/s/images"), {"podinfo": Path("/c/podinfo")}),
    )
    assert spec.argv == ["./podinfo"]
    assert spec.cwd == "/home/app"
    assert "/venv/bin" not in spec.env["PATH"]
    assert [m.target for m in spec.mounts] == [
        "/home/app",
        "/usr/local/bin/podcli",
        "/home/app/data",
    ]


def test_launch_spec_json_round_trip() -> None:
    spec = build(pod([{"name": "c", "image": "isthmus/isthmus"}]))
    assert LaunchSpec.from_json(spec.to_json()) == spec
