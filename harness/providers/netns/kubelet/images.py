"""Image references to the programs that stand in for them (pure).

There is no container runtime: an image of this project names one of its entry
points, installed in the kubelet's own environment. Anything else cannot run, and
says so (:class:`ImageNotRunnable`) rather than running something else.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: image repository -> console script in the bin dir.
IMAGE_ENTRYPOINTS: dict[str, str] = {
    "isthmus/isthmus": "isthmus",
    "isthmus/testapps": "isthmus-testapp",
}

#: the waiting reason of a container whose image has no stand-in.
NOT_RUNNABLE_REASON = "ImageNotRunnable"


class ImageNotRunnable(Exception):
    """The image names nothing this kubelet can run; ``str()`` says what is supported."""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str
    digest: str


def parse_image(image: str) -> ImageRef:
    """Split ``[registry/]repo[:tag][@digest]`` the way container runtimes do."""
    rest, _, digest = image.partition("@")
    registry = ""
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    repo, tag = rest, ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        repo, tag = rest[:colon], rest[colon + 1 :]
    if registry in ("docker.io", "index.docker.io") and repo.startswith("library/"):
        repo = repo[len("library/") :]
    return ImageRef(registry, repo, tag or ("" if digest else "latest"), digest)


def entrypoint_name(image: str) -> str:
    """The console script standing in for ``image``; raise :class:`ImageNotRunnable`."""
    ref = parse_image(image)
    try:
        return IMAGE_ENTRYPOINTS[ref.repository]
    except KeyError:
        supported = ", ".join(f"{r}[:tag]" for r in IMAGE_ENTRYPOINTS)
        raise ImageNotRunnable(
            f"image {image!r} cannot run on the netns provider: it has no container runtime, "
            f"only these images map to programs: {supported}"
        ) from None


def image_id(image: str) -> str:
    """The imageID reported in container statuses."""
    ref = parse_image(image)
    return f"isthmus-local://{ref.repository}:{ref.tag or ref.digest}"


def default_which(name: str) -> str | None:
    return shutil.which(name)


def resolve_program(
    name: str,
    bin_dir: Path,
    is_executable: Callable[[Path], bool],
    which: Callable[[str], str | None] = default_which,
) -> str:
    """A bare program name looked up in ``bin_dir`` first, then ``PATH``.

    Names with a slash are used as given; unknown names are returned unchanged so the
    launcher fails on them with its own "not found" message.
    """
    if "/" in name:
        return name
    candidate = bin_dir / name
    if is_executable(candidate):
        return str(candidate)
    return which(name) or name


def container_argv(
    image: str,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    bin_dir: Path,
    is_executable: Callable[[Path], bool],
    which: Callable[[str], str | None] = default_which,
) -> list[str]:
    """The argv of a container, with Kubernetes' command/args rules.

    ``command`` replaces the image's entry point (and its default args); ``args``
    replace the default args. The images here have no default args.
    """
    program = entrypoint_name(image)
    if command:
        head = [resolve_program(command[0], bin_dir, is_executable, which), *command[1:]]
    else:
        head = [str(bin_dir / program)]
    return [*head, *(args or [])]
