"""The image catalogue: each image's entry point, default args, PATH and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.providers.netns.kubelet.catalogue import CATALOGUE, GENERATED, find
from harness.providers.netns.kubelet.config import parse_args
from harness.providers.netns.kubelet.imagefs import materialise
from harness.providers.netns.kubelet.images import (
    ImageNotRunnable,
    ImageRoots,
    check_programs,
    container_argv,
    image_mounts,
    image_path_env,
    lookup,
)
from harness.providers.netns.kubelet.launch import Mount

BIN = Path("/venv/bin")
HOST = {"sh": "/usr/bin/sh", "nginx": "/usr/sbin/nginx", "curl": "/usr/bin/curl"}


def argv(image: str, command: list[str] | None = None, args: list[str] | None = None) -> list[str]:
    return container_argv(image, command, args, BIN, lambda p: False, HOST.get)


@pytest.mark.parametrize(
    ("image", "command", "args", "expected"),
    [
        # the image's defaults
        ("stefanprodan/podinfo:6.7.0", None, None, ["./podinfo"]),
        ("ghcr.io/stefanprodan/podinfo:6.9.2", None, None, ["./podinfo"]),
        ("nginx:alpine", None, None, ["/usr/sbin/nginx", "-g", "daemon off;"]),
        ("busybox", None, None, ["/usr/bin/sh"]),
        ("alpine:3.20", None, None, ["/bin/sh"]),
        ("curlimages/curl", None, None, ["/entrypoint.sh", "curl"]),
        ("buoyantio/bb:v0.0.6", None, None, ["/out/bb"]),
        ("buoyantio/slow_cooker:1.3.0", None, None, ["/slow_cooker/slow_cooker"]),
        # args replace CMD and keep ENTRYPOINT
        (
            "buoyantio/bb:v0.0.6",
            None,
            ["terminus", "--h1-server-port=8080", "--response-text=hello\n"],
            ["/out/bb", "terminus", "--h1-server-port=8080", "--response-text=hello\n"],
        ),
        ("curlimages/curl", None, ["-s", "http://x"], ["/entrypoint.sh", "-s", "http://x"]),
        ("busybox", None, ["sleep", "1"], ["sleep", "1"]),
        # command replaces both
        (
            "buoyantio/slow_cooker:1.3.0",
            ["/bin/sh"],
            ["-c", "/slow_cooker/slow_cooker --qps 10 http://bb:8080"],
            ["/bin/sh", "-c", "/slow_cooker/slow_cooker --qps 10 http://bb:8080"],
        ),
        (
            "stefanprodan/podinfo",
            ["./podinfo", "--port=9898"],
            None,
            ["./podinfo", "--port=9898"],
        ),
        # a bare name unknown to the host is left for the container's PATH
        ("buoyantio/slow_cooker", ["slow_cooker"], ["-qps", "1"], ["slow_cooker", "-qps", "1"]),
    ],
)
def test_kubernetes_rules_over_the_image_config(
    image: str, command: list[str] | None, args: list[str] | None, expected: list[str]
) -> None:
    assert argv(image, command, args) == expected


def test_real_images_never_resolve_into_the_kubelet_bin_dir() -> None:
    got = container_argv("busybox", ["bb"], None, BIN, lambda p: p.parent == BIN, lambda n: None)
    assert got == ["bb"]


def test_project_images_keep_the_bin_dir_on_path_and_real_ones_do_not() -> None:
    assert image_path_env(lookup("isthmus/isthmus"), BIN).startswith("/venv/bin:")
    assert "/venv/bin" not in image_path_env(lookup("nginx"), BIN)
    assert image_path_env(lookup("buoyantio/slow_cooker"), BIN).startswith("/slow_cooker:")


def test_an_image_with_a_missing_host_program_says_what_to_install() -> None:
    with pytest.raises(ImageNotRunnable, match=r"/usr/sbin/nginx is not installed.*\./run"):
        check_programs("nginx", lookup("nginx"), lambda p: False)
    check_programs("nginx", lookup("nginx"), lambda p: True)


def test_podinfo_needs_its_upstream_build() -> None:
    roots = ImageRoots(BIN, Path("/state/images"), {})
    with pytest.raises(ImageNotRunnable, match="python -m harness build"):
        image_mounts("stefanprodan/podinfo", lookup("stefanprodan/podinfo"), roots, Path("/s"))


def test_image_mounts_resolve_sources_and_give_fresh_writable_dirs() -> None:
    roots = ImageRoots(BIN, Path("/state/images"), {"podinfo": Path("/cache/podinfo/v1")})
    assert image_mounts(
        "stefanprodan/podinfo", lookup("stefanprodan/podinfo"), roots, Path("/s")
    ) == [
        Mount("/cache/podinfo/v1", "/home/app", True, "dir"),
        Mount("/cache/podinfo/v1/podcli", "/usr/local/bin/podcli", True, "file"),
    ]
    nginx = image_mounts("nginx", lookup("nginx"), roots, Path("/s"))
    assert Mount("/state/images/nginx-etc", "/etc/nginx", True, "dir") in nginx
    assert Mount("/s/image-rw-0", "/var/log/nginx", False, "fresh") in nginx


def test_every_row_is_well_formed() -> None:
    names = [e.repository for e in CATALOGUE]
    assert len(names) == len(set(names)), names
    for entry in CATALOGUE:
        assert entry.entrypoint or entry.cmd, entry.repository
        assert entry.runs, entry.repository
        for p in entry.paths:
            kind, _, rest = p.source.partition(":")
            assert kind in ("generated", "upstream", "bin"), p
            if kind == "generated":
                assert rest.split("/")[0] in GENERATED, p
    assert find("nope") is None


def test_generated_dirs_are_written_with_modes_and_symlinks(tmp_path: Path) -> None:
    roots = materialise(tmp_path, BIN, {"podinfo": Path("/c")})
    images = tmp_path / "images"
    assert roots.generated == images
    script = images / "curl-entrypoint" / "entrypoint.sh"
    assert os.access(script, os.X_OK)
    assert (images / "slow_cooker" / "slow_cooker").readlink() == BIN / "slow_cooker"
    assert (images / "bb" / "bb").readlink() == BIN / "bb"
    conf = (images / "nginx-etc" / "nginx.conf").read_text()
    assert "include /etc/nginx/conf.d/*.conf;" in conf
    assert (images / "nginx-etc" / "conf.d" / "default.conf").stat().st_mode & 0o777 == 0o644
    materialise(tmp_path, BIN, {})  # idempotent: rewritten in place
    assert script.is_file()


def test_kubelet_takes_upstream_dirs_and_refuses_bad_ones() -> None:
    base = [
        "--kubeconfig=k", "--node-name=n", "--node-ip=1.2.3.4", "--node-netns=ns",
        "--cluster-name=c", "--cluster-domain=d", "--dns-ip=10.0.0.10", "--state-dir=/s",
        "--netns-prefix=p",
    ]  # fmt: skip
    cfg = parse_args([*base, "--upstream-dir=podinfo=/cache/podinfo/v1"])
    assert cfg.upstream_dirs == {"podinfo": Path("/cache/podinfo/v1")}
    with pytest.raises(SystemExit):
        parse_args([*base, "--upstream-dir=podinfo"])
