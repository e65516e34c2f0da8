"""Writes the catalogue's generated image directories under the kubelet's state dir (IO).

Each directory of ``catalogue.GENERATED`` is rebuilt at kubelet start into
``<state>/images/<name>``: written beside it first, then swapped in, so a container
never binds a half-written directory. Containers bind these read-only; nothing is
written anywhere else on the host.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from harness.providers.netns.kubelet.catalogue import GENERATED
from harness.providers.netns.kubelet.images import ImageRoots

SYMLINK = "@symlink:"
COPY = "@copy:"


def write_tree(dest: Path, files: Mapping[str, str], bin_dir: Path) -> None:
    """Write one generated directory at ``dest`` (replacing what was there)."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tmp.chmod(0o755)
    for rel, content in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        if content.startswith(SYMLINK):
            path.symlink_to(content[len(SYMLINK) :].format(bin=bin_dir))
            continue
        if content.startswith(COPY):
            source = Path(content[len(COPY) :])
            if source.is_file():
                shutil.copyfile(source, path)
            else:  # the image can still run; what needs the file will say it is missing
                continue
        else:
            path.write_text(content)
        path.chmod(0o755 if rel.endswith(".sh") else 0o644)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def materialise(state_dir: Path, bin_dir: Path, upstream: Mapping[str, Path]) -> ImageRoots:
    """Write every generated directory; return where image sources are."""
    root = state_dir / "images"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for name, files in GENERATED.items():
        write_tree(root / name, files, bin_dir)
    return ImageRoots(bin_dir=bin_dir, generated=root, upstream=dict(upstream))
