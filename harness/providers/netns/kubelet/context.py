"""What every pod worker shares: configuration, API, events, addresses, probes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.providers.netns.kubelet.api import ApiUnavailable, KubeApi
from harness.providers.netns.kubelet.cgroups import CgroupV2
from harness.providers.netns.kubelet.config import KubeletConfig
from harness.providers.netns.kubelet.envvars import service_env
from harness.providers.netns.kubelet.events import EventRecorder
from harness.providers.netns.kubelet.images import ImageRoots
from harness.providers.netns.kubelet.ipam import Ipam
from harness.providers.netns.kubelet.probes import Prober
from harness.providers.netns.kubelet.sandbox import SandboxRecords

log = logging.getLogger(__name__)


class IpamStore:
    """The node's :class:`Ipam`, saved to ``DIR/ipam.json`` after every change."""

    def __init__(self, state_dir: Path, cidr: str) -> None:
        self.path = state_dir / "ipam.json"
        text = self.path.read_text() if self.path.exists() else ""
        self.ipam = Ipam.from_json(text, cidr)

    def allocate(self, uid: str) -> str:
        ip = self.ipam.allocate(uid)
        self._save()
        return ip

    def release(self, uid: str) -> None:
        if self.ipam.release(uid) is not None:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.ipam.to_json())
        tmp.replace(self.path)


@dataclass
class NodeContext:
    config: KubeletConfig
    api: KubeApi
    events: EventRecorder
    ipam: IpamStore
    records: SandboxRecords
    prober: Prober
    #: the cgroup v2 manager for containers' limits (None: limits are not enforced)
    cgroups: CgroupV2 | None = None
    #: why ``cgroups`` is None
    cgroups_problem: str = "cgroup v2 not probed"
    #: where image sources are (catalogue); None: the project's images only.
    images: ImageRoots | None = None
    _service_env: dict[str, str] = field(default_factory=dict)
    _service_env_at: float = 0.0

    async def service_env(self) -> dict[str, str]:
        """``KUBERNETES_SERVICE_*`` variables (cached for a minute)."""
        if not self._service_env or time.time() - self._service_env_at > 60:
            try:
                found = await self.api.kubernetes_service()
            except ApiUnavailable as e:
                log.warning("cannot read default/kubernetes: %s", e)
                found = None
            if found is not None:
                self._service_env = service_env(*found)
                self._service_env_at = time.time()
        return dict(self._service_env)
