"""core/v1 Events about pods, as the kubelet writes them.

Events are fire-and-forget: recording one never blocks or fails the pod's work. The
same (pod, reason, message) within a short window is written once, so a crash loop
or a failing probe does not flood the API.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from harness.providers.netns.kubelet.api import KubeApi
from harness.providers.netns.kubelet.kobjects import JsonDict, Pod
from harness.providers.netns.kubelet.podstatus import rfc3339

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"


def event_body(
    pod: Pod, node_name: str, type_: str, reason: str, message: str, field_path: str, now: float
) -> JsonDict:
    """The Event object for one occurrence."""
    meta = pod.get("metadata", {})
    involved: JsonDict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
    }
    if field_path:
        involved["fieldPath"] = field_path
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name', '')}.{int(now * 1e9):x}{secrets.token_hex(2)}",
            "namespace": meta.get("namespace", ""),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": "kubelet", "host": node_name},
        "reportingComponent": "kubelet",
        "reportingInstance": node_name,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def container_field_path(container: str, init: bool = False) -> str:
    return f"spec.{'initContainers' if init else 'containers'}{{{container}}}"


class EventRecorder:
    def __init__(
        self,
        api: KubeApi,
        node_name: str,
        dedupe_window: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.node_name = node_name
        self.dedupe_window = dedupe_window
        self.clock = clock
        self._recent: dict[tuple[str, str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, pod: Pod, type_: str, reason: str, message: str, field_path: str = "") -> None:
        now = self.clock()
        key = (pod.get("metadata", {}).get("uid", ""), reason, message)
        if now - self._recent.get(key, -1e18) < self.dedupe_window:
            return
        self._recent[key] = now
        if len(self._recent) > 4096:
            cutoff = now - self.dedupe_window
            self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
        log.info("event %s %s %s: %s", pod.get("metadata", {}).get("name"), type_, reason, message)
        body = event_body(pod, self.node_name, type_, reason, message, field_path, now)
        task = asyncio.get_running_loop().create_task(
            self.api.create_event(body["metadata"]["namespace"], body)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait briefly for events still being written."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
