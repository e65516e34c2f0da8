"""The container launcher: the first program of every container process.

Run as ``ip netns exec <netns> python launch.py SPEC.json [READY_FD]`` (or ``-m``).
It reads a :class:`LaunchSpec`, then, in this order: unshares a private mount
namespace (and a UTS namespace when the pod has its own hostname), bind-mounts every
volume at its mount path, drops to the container's uid/gid, changes directory, writes
one byte to READY_FD (if given) and execs the program, so the process the kubelet
started *is* the container.

Rules:
- Nothing is ever created on the host's filesystem. A mount path whose directories
  do not exist gets them inside an overlay (upper/work under the pod's scratch dir)
  mounted over the deepest existing ancestor, in this mount namespace only; when that
  ancestor is ``/`` the container gets an overlay root and is chrooted into it.
- A non-root container must be able to reach its program and interpreter even when
  they live under a directory closed to others (``/root/.pyenv``): such a directory
  is overlaid with an upper root that others may traverse, again only in here.
- A "fresh" mount's source is created (mode 1777, like /tmp) before it is bound: the
  writable layer an image gave its program (logs, pid and temp files).
- Volume sources are opened before any overlay is mounted, so a source that lives
  under an overlaid directory still binds the real directory.
- Standard library only: this runs once per container start and must start fast.
- Exit codes when the program never ran: 128 setup failed, 127 not found, 126 not
  executable (the message goes to the container log).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

EXIT_SETUP_FAILED = 128
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


@dataclass(frozen=True)
class Mount:
    """Bind ``source`` (a directory or file on the host) at ``target`` in the container."""

    source: str
    target: str
    readonly: bool = True
    #: "dir" | "file" | "fresh" (a writable dir the launcher creates, open to every user)
    kind: str = "dir"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything the launcher needs; written as JSON by the kubelet."""

    argv: list[str]
    env: dict[str, str]
    scratch: str
    cwd: str = "/"
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    hostname: str = ""
    #: files whose directories must be traversable by ``uid`` (the program, its interpreter)
    traverse: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> LaunchSpec:
        raw = json.loads(text)
        raw["mounts"] = [Mount(**m) for m in raw.get("mounts", [])]
        return cls(**raw)


class SetupError(Exception):
    pass


_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data is not None else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def _unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def split_existing(path: str) -> tuple[str, list[str]]:
    """The deepest existing ancestor of ``path`` (symlinks resolved) and the missing rest."""
    parts = [p for p in os.path.normpath(path).split("/") if p]
    current = "/"
    for i, part in enumerate(parts):
        nxt = os.path.join(current, part)
        if not os.path.exists(nxt):
            return current, parts[i:]
        current = os.path.realpath(nxt)
    return current, []


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            raw = line.split()[4]
            points.append(raw.encode().decode("unicode_escape"))
    return points


def _top_level(points: list[str]) -> list[str]:
    kept: list[str] = []
    for p in sorted(set(points), key=lambda s: (s.count("/"), s)):
        if p == "/":
            continue
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


class _Mounter:
    """Creates mount points inside overlays; remembers what it mounted where."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.overlays: list[str] = []
        self.binds: list[str] = []

    def _fresh_dirs(self, tag: str) -> tuple[str, str]:
        base = os.path.join(self.scratch, f"overlay-{len(self.overlays)}-{tag}")
        upper, work = os.path.join(base, "upper"), os.path.join(base, "work")
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        return upper, work

    def overlay_root(self) -> None:
        """Give the container an overlay of ``/`` with every submount re-attached, chroot."""
        upper, work = self._fresh_dirs("root")
        new_root = os.path.join(self.scratch, "rootfs")
        os.makedirs(new_root, exist_ok=True)
        submounts = _top_level(_mount_points())
        _mount("overlay", new_root, "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
        for point in submounts:
            if point == new_root or point.startswith(new_root + "/"):
                continue
            dest = new_root + point
            if os.path.lexists(dest):
                _mount(point, dest, None, MS_BIND | MS_REC)
        os.chroot(new_root)
        os.chdir("/")
        self.overlays.append("/")

    def _writable(self, existing: str) -> bool:
        def covers(root: str) -> bool:
            return root == "/" or existing == root or existing.startswith(root.rstrip("/") + "/")

        best, best_is_overlay = "", False
        for roots, is_overlay in ((self.overlays, True), (self.binds, False)):
            for root in roots:
                if covers(root) and len(root) >= len(best):
                    best, best_is_overlay = root, is_overlay
        return best_is_overlay

    def ensure(self, path: str, kind: str) -> str:
        """Make ``path`` exist (as a ``kind``) in this namespace only; return its real path."""
        existing, missing = split_existing(path)
        if not missing:
            return existing
        if not self._writable(existing):
            upper, work = self._fresh_dirs(existing.strip("/").replace("/", "_"))
            _mount(
                "overlay",
                existing,
                "overlay",
                0,
                f"lowerdir={existing},upperdir={upper},workdir={work}",
            )
            self.overlays.append(existing)
        target = os.path.join(existing, *missing)
        if kind == "file":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "a"):
                pass
        else:
            os.makedirs(target, exist_ok=True)
        return target

    def open_up(self, directory: str) -> None:
        """Let every user traverse ``directory`` in this namespace."""
        mode = os.stat(directory).st_mode & 0o7777
        if mode & 0o001:
            return
        if self._writable(directory):
            os.chmod(directory, mode | 0o011)
            return
        upper, work = self._fresh_dirs(directory.strip("/").replace("/", "_") or "root")
        os.chmod(upper, mode | 0o011)
        _mount(
            "overlay",
            directory,
            "overlay",
            0,
            f"lowerdir={directory},upperdir={upper},workdir={work}",
        )
        self.overlays.append(directory)

    def bind(self, fd: int, mount: Mount) -> None:
        target = self.ensure(mount.target, "file" if mount.kind == "file" else "dir")
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        if mount.readonly:
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        self.binds.append(target)


def _ancestors(paths: list[str]) -> list[str]:
    """Every directory on the way to each path (symlinks resolved), parents first."""
    seen: list[str] = []
    for path in paths:
        for variant in (os.path.abspath(path), os.path.realpath(path)):
            parts = Path(variant).parent.parts
            for i in range(2, len(parts) + 1):
                d = os.path.realpath(str(Path(*parts[:i])))
                if d not in seen:
                    seen.append(d)
    return seen


def _needs_root_overlay(spec: LaunchSpec) -> bool:
    paths = [m.target for m in spec.mounts] + [spec.cwd]
    for p in paths:
        existing, missing = split_existing(p)
        if missing and existing == "/":
            return True
    return False


def setup(spec: LaunchSpec) -> None:
    """Namespaces, mounts and credentials; raise :class:`SetupError` or ``OSError``."""
    _unshare(CLONE_NEWNS | (CLONE_NEWUTS if spec.hostname else 0))
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.hostname:
        _sethostname(spec.hostname)
    for m in spec.mounts:
        if m.kind == "fresh":
            os.makedirs(m.source, exist_ok=True)
            os.chmod(m.source, 0o1777)
    fds = [os.open(m.source, os.O_PATH | os.O_CLOEXEC) for m in spec.mounts]
    mounter = _Mounter(spec.scratch)
    if _needs_root_overlay(spec):
        mounter.overlay_root()
    if spec.uid:
        for directory in _ancestors(spec.traverse):
            mounter.open_up(directory)
    order = sorted(range(len(spec.mounts)), key=lambda i: len(Path(spec.mounts[i].target).parts))
    for i in order:
        mounter.bind(fds[i], spec.mounts[i])
    for fd in fds:
        os.close(fd)
    mounter.ensure(spec.cwd, "dir")
    if spec.uid is not None or spec.gid is not None:
        os.setgroups(spec.groups)
        os.setgid(spec.gid if spec.gid is not None else 0)
        if spec.uid is not None:
            os.setuid(spec.uid)
    os.chdir(spec.cwd)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: launch.py SPEC.json [READY_FD]", file=sys.stderr)
        os._exit(2)
    try:
        spec = LaunchSpec.from_json(Path(args[0]).read_text())
        setup(spec)
    except (SetupError, OSError, ValueError, TypeError) as e:
        print(f"isthmus launcher: container setup failed: {e}", file=sys.stderr, flush=True)
        os._exit(EXIT_SETUP_FAILED)
    if len(args) == 2:
        # Tell the kubelet the namespaces are final: exec probes and hooks may enter them.
        ready = int(args[1])
        os.write(ready, b"1")
        os.close(ready)
    try:
        os.execvpe(spec.argv[0], spec.argv, spec.env)
    except FileNotFoundError:
        where = (
            "no such file or directory"
            if "/" in spec.argv[0]
            else "executable file not found in $PATH"
        )
        print(f'isthmus launcher: exec: "{spec.argv[0]}": {where}', file=sys.stderr, flush=True)
        os._exit(EXIT_NOT_FOUND)
    except OSError as e:
        print(f'isthmus launcher: exec "{spec.argv[0]}": {e}', file=sys.stderr, flush=True)
        os._exit(EXIT_NOT_EXECUTABLE)


if __name__ == "__main__":
    main()
