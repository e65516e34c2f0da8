"""Image references to the programs that really run them (pure).

There is no container runtime: an image is a row of :mod:`catalogue`, which names its
real program, entry point, default args, working dir, PATH and the paths it has.
Anything else cannot run, and says so (:class:`ImageNotRunnable`) rather than running
something else; so does a catalogued image whose program is missing here.
Kubernetes' rules: ``command`` replaces the image's ENTRYPOINT (and its CMD), ``args``
replace the CMD.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.providers.netns.kubelet.catalogue import CATALOGUE, ImageEntry, find
from harness.providers.netns.kubelet.launch import Mount

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


@dataclass(frozen=True)
class ImageRoots:
    """Where an image's symbolic sources are on this host."""

    bin_dir: Path
    #: generated image directories (catalogue.GENERATED), one per name.
    generated: Path
    #: built upstream components (``harness.upstream``) by name.
    upstream: Mapping[str, Path]


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
    if repo.startswith("library/") and registry in ("", "docker.io", "index.docker.io"):
        repo = repo[len("library/") :]
    return ImageRef(registry, repo, tag or ("" if digest else "latest"), digest)


def lookup(image: str) -> ImageEntry:
    """The catalogue row of ``image``; raise :class:`ImageNotRunnable` if it has none."""
    entry = find(parse_image(image).repository)
    if entry is None:
        supported = ", ".join(f"{e.repository}[:tag]" for e in CATALOGUE)
        raise ImageNotRunnable(
            f"image {image!r} cannot run on the netns provider: it has no container runtime, "
            f"only these images map to programs: {supported}"
        )
    return entry


def entrypoint_name(image: str) -> str:
    """The program an image starts by default; raise :class:`ImageNotRunnable`."""
    entry = lookup(image)
    return (entry.entrypoint or entry.cmd)[0]


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
    launcher looks them up on the container's PATH or fails with its "not found".
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
    """The argv of a container, with Kubernetes' command/args rules over the image's."""
    entry = lookup(image)
    # A real image has no kubelet bin dir: its bare names come from the host's PATH.
    search = bin_dir if entry.project else Path("/nonexistent")
    if command:
        argv = [*command, *(args or [])]
    elif entry.entrypoint:
        argv = [*entry.entrypoint, *(args if args else entry.cmd)]
    else:
        argv = [*(args if args else entry.cmd)]
    if not argv:
        raise ImageNotRunnable(
            f"image {image!r} has no default command and the container names none"
        )
    if not command and entry.project:
        return [str(bin_dir / argv[0]), *argv[1:]]
    return [resolve_program(argv[0], search, is_executable, which), *argv[1:]]


def image_path_env(entry: ImageEntry, bin_dir: Path) -> str:
    """The PATH of a container of this image."""
    dirs = [str(bin_dir), *entry.path] if entry.project else list(entry.path)
    return ":".join(dirs)


def check_programs(image: str, entry: ImageEntry, is_executable: Callable[[Path], bool]) -> None:
    """Raise :class:`ImageNotRunnable` if a host program the image needs is missing."""
    missing = [p for p in entry.needs if not is_executable(Path(p))]
    if missing:
        raise ImageNotRunnable(
            f"image {image!r} runs {entry.runs}, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed on this host "
            "(./run installs the Debian packages)"
        )


def _source(image: str, source: str, roots: ImageRoots) -> str:
    kind, _, rest = source.partition(":")
    name, _, sub = rest.partition("/")
    if kind == "generated":
        base = roots.generated / name
    elif kind == "upstream":
        if name not in roots.upstream:
            raise ImageNotRunnable(
                f"image {image!r} runs {name} built from its upstream module, which is not "
                "built here; run `python -m harness build` (./run does)"
            )
        base = roots.upstream[name]
    elif kind == "bin":
        base = roots.bin_dir / name
    else:
        raise ValueError(f"catalogue source {source!r} has no known kind")
    return str(base / sub) if sub else str(base)


def image_mounts(image: str, entry: ImageEntry, roots: ImageRoots, scratch: Path) -> list[Mount]:
    """The image's paths as mounts: read-only sources, then fresh writable dirs."""
    mounts = [
        Mount(_source(image, p.source, roots), p.target, readonly=True, kind=p.kind)
        for p in entry.paths
    ]
    for i, target in enumerate(entry.writable):
        mounts.append(Mount(str(scratch / f"image-rw-{i}"), target, readonly=False, kind="fresh"))
    return mounts
