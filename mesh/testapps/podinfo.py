"""Who a test workload is: the pod identity it reports in every answer.

The kubelet (or the netns stand-in) sets these through the downward API; any that is
missing reads as ``None``, except the pod name, which falls back to the host name.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict


class IdentityFields(TypedDict):
    pod: str
    namespace: str | None
    cluster: str | None
    pod_ip: str | None


@dataclass(frozen=True)
class PodInfo:
    pod: str
    namespace: str | None
    cluster: str | None
    pod_ip: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PodInfo:
        """Read ``POD_NAME``, ``POD_NAMESPACE``, ``CLUSTER_NAME`` and ``POD_IP``."""
        return cls(
            pod=env.get("POD_NAME") or socket.gethostname(),
            namespace=env.get("POD_NAMESPACE") or None,
            cluster=env.get("CLUSTER_NAME") or None,
            pod_ip=env.get("POD_IP") or None,
        )

    def fields(self) -> IdentityFields:
        return {
            "pod": self.pod,
            "namespace": self.namespace,
            "cluster": self.cluster,
            "pod_ip": self.pod_ip,
        }
