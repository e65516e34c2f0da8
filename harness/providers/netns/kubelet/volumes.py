"""Materialising a pod's volumes into ``DIR/pods/<uid>/volumes/<name>/`` (IO).

Files are written the way Kubernetes' atomic writer does: the content lives in a
timestamped ``..<ts>`` directory, ``..data`` is a symlink to it swapped with one
rename, and the visible entries are symlinks through ``..data``. A container that
bind-mounts the volume directory therefore sees a token renewal or a ConfigMap
change all at once, never half-written. Tokens are renewed at 80 % of their
lifetime; ConfigMaps and Secrets are re-read periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from harness.providers.netns.kubelet.api import ApiUnavailable, KubeApi
from harness.providers.netns.kubelet.config import KubeletTimings
from harness.providers.netns.kubelet.envvars import MissingReference, referenced_objects
from harness.providers.netns.kubelet.kobjects import Pod
from harness.providers.netns.kubelet.volumeplan import (
    FileEntry,
    VolumeInputs,
    VolumeKind,
    VolumePlan,
    plan_volume,
    token_sources,
    volume_objects,
)

log = logging.getLogger(__name__)

DATA = "..data"


def _digest(files: dict[str, FileEntry]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{files[path].mode}\0".encode())
        h.update(files[path].data)
    return h.hexdigest()


def write_atomic(target: Path, files: dict[str, FileEntry]) -> None:
    """Replace the content of ``target`` with ``files`` in one atomic step."""
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    stamp = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns() % 10**9}"
    stamp.mkdir(mode=0o755)
    for rel, entry in files.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(entry.data)
        path.chmod(entry.mode)
    tmp_link = target / "..data_tmp"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(stamp.name)
    tmp_link.replace(target / DATA)
    visible = {Path(rel).parts[0] for rel in files}
    for name in visible:
        link = target / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            link.symlink_to(f"{DATA}/{name}")
    for child in target.iterdir():
        if child.name.startswith(".."):
            if child.name not in (DATA, stamp.name) and child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
        elif child.name not in visible and child.is_symlink():
            child.unlink()


class VolumeManager:
    """Fetches a pod's sources, writes its volumes and keeps them fresh."""

    def __init__(self, api: KubeApi, pod: Pod, volumes_dir: Path, timings: KubeletTimings) -> None:
        self.api = api
        self.pod = pod
        self.dir = volumes_dir
        self.timings = timings
        meta = pod.get("metadata", {})
        self.namespace = meta.get("namespace", "")
        self.name = meta.get("name", "")
        self.uid = meta.get("uid", "")
        self.service_account = pod.get("spec", {}).get("serviceAccountName") or "default"
        #: (audience, seconds) -> (token, renew at)
        self._tokens: dict[tuple[str, int], tuple[str, float]] = {}
        self._digests: dict[str, str] = {}
        self.pod_ip = ""
        self.host_ip = ""

    def path(self, volume: str) -> Path:
        for vol in self.pod.get("spec", {}).get("volumes") or []:
            if vol.get("name") == volume and "hostPath" in vol:
                return Path(vol["hostPath"].get("path", ""))
        return self.dir / volume

    def api_object_volumes(self) -> set[str]:
        """Volumes Kubernetes always mounts read-only."""
        return {
            v.get("name", "")
            for v in self.pod.get("spec", {}).get("volumes") or []
            if {"configMap", "secret", "downwardAPI", "projected"} & v.keys()
        }

    async def fetch_inputs(self, now: Callable[[], float] = time.time) -> VolumeInputs:
        """ConfigMaps, Secrets (for volumes and env) and due tokens; raise ApiUnavailable."""
        cms, secs = volume_objects(self.pod)
        env_cms, env_secs = referenced_objects(self.pod)
        configmaps = {n: await self.api.get_configmap(self.namespace, n) for n in cms | env_cms}
        secrets = {n: await self.api.get_secret(self.namespace, n) for n in secs | env_secs}
        for vol in self.pod.get("spec", {}).get("volumes") or []:
            for tok in token_sources(vol):
                cached = self._tokens.get(tok.key)
                if cached is None or now() >= cached[1]:
                    token, expiry = await self.api.request_token(
                        self.namespace,
                        self.service_account,
                        tok.audience,
                        tok.expiration_seconds,
                        self.name,
                        self.uid,
                    )
                    issued = now()
                    lifetime = (expiry - issued) if expiry > issued else tok.expiration_seconds
                    renew = issued + lifetime * self.timings.token_refresh_fraction
                    self._tokens[tok.key] = (token, renew)
        return VolumeInputs(
            configmaps=configmaps,
            secrets=secrets,
            tokens={k: v[0] for k, v in self._tokens.items()},
            pod_ip=self.pod_ip,
            host_ip=self.host_ip,
        )

    def next_token_renewal(self) -> float | None:
        return min((renew for _, renew in self._tokens.values()), default=None)

    def write(self, inputs: VolumeInputs, tolerate_missing: bool = False) -> list[VolumePlan]:
        """Plan and write every volume; raise MissingReference naming the volume.

        With ``tolerate_missing`` (periodic refresh) a volume whose source vanished
        keeps its last content instead.
        """
        plans = []
        for vol in self.pod.get("spec", {}).get("volumes") or []:
            try:
                plan = plan_volume(self.pod, vol, inputs)
            except MissingReference as e:
                if tolerate_missing:
                    continue
                raise MissingReference(
                    f'MountVolume.SetUp failed for volume "{vol.get("name", "")}" : {e}'
                ) from e
            self._apply(plan)
            plans.append(plan)
        return plans

    def _apply(self, plan: VolumePlan) -> None:
        path = self.dir / plan.name
        if plan.kind is VolumeKind.EMPTY_DIR:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
        elif plan.kind is VolumeKind.HOST_PATH:
            return
        else:
            digest = _digest(plan.files)
            if self._digests.get(plan.name) != digest:
                write_atomic(path, plan.files)
                self._digests[plan.name] = digest

    async def keep_fresh(self) -> None:
        """Renew tokens when due and re-read sources periodically, until cancelled."""
        last_resync = time.time()
        while True:
            renew = self.next_token_renewal()
            now = time.time()
            wake = last_resync + self.timings.volume_resync
            if renew is not None:
                wake = min(wake, renew)
            await asyncio.sleep(max(0.5, wake - now))
            try:
                inputs = await self.fetch_inputs()
                self.write(inputs, tolerate_missing=True)
                last_resync = time.time()
            except ApiUnavailable as e:
                log.warning("%s/%s: volume refresh failed: %s", self.namespace, self.name, e)
                await asyncio.sleep(self.timings.retry)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.dir)


def is_file(path: Path) -> bool:
    return os.path.isfile(path)
