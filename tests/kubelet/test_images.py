"""Image references -> programs, and Kubernetes' command/args rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.providers.netns.kubelet.images import (
    ImageNotRunnable,
    ImageRef,
    container_argv,
    entrypoint_name,
    image_id,
    parse_image,
    resolve_program,
)

BIN = Path("/venv/bin")


def executable_in_bin(*names: str):  # type: ignore[no-untyped-def]
    return lambda p: p.parent == BIN and p.name in names


def no_path(name: str) -> None:
    return None


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("isthmus/isthmus", ImageRef("", "isthmus/isthmus", "latest", "")),
        ("isthmus/isthmus:v1", ImageRef("", "isthmus/isthmus", "v1", "")),
        (
            "localhost:5000/isthmus/testapps:dev",
            ImageRef("localhost:5000", "isthmus/testapps", "dev", ""),
        ),
        (
            "ghcr.io/isthmus/isthmus@sha256:abc",
            ImageRef("ghcr.io", "isthmus/isthmus", "", "sha256:abc"),
        ),
        ("docker.io/library/busybox:1.36", ImageRef("docker.io", "busybox", "1.36", "")),
        ("busybox", ImageRef("", "busybox", "latest", "")),
    ],
)
def test_parse_image(image: str, expected: ImageRef) -> None:
    assert parse_image(image) == expected


@pytest.mark.parametrize(
    ("image", "program"),
    [
        ("isthmus/isthmus", "isthmus"),
        ("isthmus/isthmus:0.1.0", "isthmus"),
        ("isthmus/testapps:latest", "isthmus-testapp"),
        ("registry.local/isthmus/testapps", "isthmus-testapp"),
    ],
)
def test_project_images_map_to_entry_points(image: str, program: str) -> None:
    assert entrypoint_name(image) == program


@pytest.mark.parametrize("image", ["redis:7", "quay.io/curl/curl:8", "isthmus/other"])
def test_other_images_are_refused_with_the_supported_list(image: str) -> None:
    with pytest.raises(ImageNotRunnable) as err:
        entrypoint_name(image)
    assert image in str(err.value)
    assert "isthmus/isthmus[:tag]" in str(err.value)
    assert "isthmus/testapps[:tag]" in str(err.value)
    assert "stefanprodan/podinfo[:tag]" in str(err.value)


def test_image_id_names_repository_and_tag() -> None:
    assert image_id("isthmus/isthmus:v2") == "isthmus-local://isthmus/isthmus:v2"


@pytest.mark.parametrize(
    ("command", "args", "argv"),
    [
        (None, None, ["/venv/bin/isthmus-testapp"]),
        (None, ["server", "--port", "80"], ["/venv/bin/isthmus-testapp", "server", "--port", "80"]),
        (["isthmus"], None, ["/venv/bin/isthmus"]),
        (["isthmus", "proxy"], ["--x"], ["/venv/bin/isthmus", "proxy", "--x"]),
        (["python3", "-m", "http.server"], None, ["/usr/bin/python3", "-m", "http.server"]),
        (["/bin/sh", "-c", "true"], None, ["/bin/sh", "-c", "true"]),
        (["nowhere"], None, ["nowhere"]),
    ],
)
def test_command_replaces_entrypoint_and_args_replace_defaults(
    command: list[str] | None, args: list[str] | None, argv: list[str]
) -> None:
    def which(name: str) -> str | None:
        return {"python3": "/usr/bin/python3", "isthmus": "/usr/local/bin/isthmus"}.get(name)

    got = container_argv(
        "isthmus/testapps",
        command,
        args,
        BIN,
        executable_in_bin("isthmus", "isthmus-testapp"),
        which,
    )
    assert got == argv


def test_bare_name_prefers_bin_dir_over_path() -> None:
    assert (
        resolve_program("isthmus", BIN, executable_in_bin("isthmus"), lambda n: "/usr/bin/isthmus")
        == "/venv/bin/isthmus"
    )
    assert (
        resolve_program("isthmus", BIN, executable_in_bin(), lambda n: "/usr/bin/isthmus")
        == "/usr/bin/isthmus"
    )
    assert resolve_program("isthmus", BIN, executable_in_bin(), no_path) == "isthmus"


def test_unknown_image_fails_even_with_a_command() -> None:
    with pytest.raises(ImageNotRunnable):
        container_argv("redis", ["sleep", "1"], None, BIN, executable_in_bin(), no_path)
