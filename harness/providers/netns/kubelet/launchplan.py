"""Pod spec + resolved inputs -> the :class:`LaunchSpec` of one container (pure).

What Kubernetes takes from an image (entry point, default args, working dir, PATH,
the files the image has) comes from the image's catalogue row; then these defaults:
``HOME`` is ``/root`` for uid 0 and ``/`` otherwise, and Python output is unbuffered
so logs appear as they are written. The image's paths are mounted before the pod's
volumes, so a volume at or under one of them wins. ``$(VAR)`` in command and args
expands against the container's environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.providers.netns.kubelet.envvars import expand
from harness.providers.netns.kubelet.images import (
    ImageRoots,
    check_programs,
    container_argv,
    default_which,
    image_mounts,
    image_path_env,
    lookup,
)
from harness.providers.netns.kubelet.kobjects import Container, Pod
from harness.providers.netns.kubelet.launch import LaunchSpec, Mount
from harness.providers.netns.kubelet.podfiles import pod_hostname

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def credentials(pod: Pod, container: Container) -> tuple[int | None, int | None, list[int]]:
    """(uid, gid, supplementary groups); the container's securityContext wins over the pod's."""
    psc = pod.get("spec", {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    groups = list(psc.get("supplementalGroups") or [])
    if "fsGroup" in psc and psc["fsGroup"] not in groups:
        groups.append(psc["fsGroup"])
    return uid, gid, groups


def base_env(
    pod: Pod, bin_dir: Path, uid: int | None, node_name: str, path: str = ""
) -> dict[str, str]:
    """Variables a container image would provide, before the pod's own env."""
    host_network = pod.get("spec", {}).get("hostNetwork", False)
    return {
        "PATH": path or f"{bin_dir}:{SYSTEM_PATH}",
        "HOME": "/root" if not uid else "/",
        "HOSTNAME": node_name if host_network else pod_hostname(pod),
        "PYTHONUNBUFFERED": "1",
    }


def build_launch_spec(
    pod: Pod,
    container: Container,
    env: Mapping[str, str],
    mounts: Sequence[Mount],
    *,
    scratch: Path,
    bin_dir: Path,
    node_name: str,
    is_executable: Callable[[Path], bool],
    which: Callable[[str], str | None] = default_which,
    interpreter: str = "",
    roots: ImageRoots | None = None,
) -> LaunchSpec:
    """The launcher's instructions; raise ``ImageNotRunnable`` for an image that cannot run.

    ``roots`` says where image sources are; it defaults to the bin dir alone (no
    generated or upstream directories), which suits the project's own images.
    """
    image = container.get("image", "")
    entry = lookup(image)
    check_programs(image, entry, is_executable)
    roots = roots or ImageRoots(bin_dir, scratch / "no-generated-images", {})
    own = image_mounts(image, entry, roots, scratch)
    uid, gid, groups = credentials(pod, container)
    path = image_path_env(entry, bin_dir)
    full_env = {**base_env(pod, bin_dir, uid, node_name, path), **env}
    command = [expand(a, full_env) for a in container.get("command") or []]
    args = [expand(a, full_env) for a in container.get("args") or []]
    argv = container_argv(image, command, args, bin_dir, is_executable, which)
    host_network = pod.get("spec", {}).get("hostNetwork", False)
    return LaunchSpec(
        argv=argv,
        env=full_env,
        scratch=str(scratch),
        cwd=container.get("workingDir") or entry.workdir,
        uid=uid,
        gid=gid if gid is not None or uid is None else 0,
        groups=groups,
        mounts=[*own, *mounts],
        hostname="" if host_network else pod_hostname(pod),
        traverse=[p for p in (argv[0], interpreter) if p.startswith("/")],
    )
