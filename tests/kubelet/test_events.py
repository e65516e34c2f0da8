"""Event objects and their de-duplication, with a fake API at our seam."""

from __future__ import annotations

from harness.providers.netns.kubelet.events import (
    WARNING,
    EventRecorder,
    container_field_path,
    event_body,
)
from harness.providers.netns.kubelet.kobjects import JsonDict, Pod

POD: Pod = {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1"}}


class RecordingApi:
    """Only ``create_event`` may be called; anything else fails loudly."""

    def __init__(self) -> None:
        self.events: list[tuple[str, JsonDict]] = []

    async def create_event(self, namespace: str, event: JsonDict) -> None:
        self.events.append((namespace, event))

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"unexpected API call {name}")


def test_event_body_points_at_the_container() -> None:
    body = event_body(
        POD, "n1", WARNING, "BackOff", "back-off", container_field_path("app"), 1_700_000_000.0
    )
    assert body["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-0",
        "namespace": "shop",
        "uid": "u-1",
        "fieldPath": "spec.containers{app}",
    }
    assert body["source"] == {"component": "kubelet", "host": "n1"}
    assert body["metadata"]["name"].startswith("web-0.")
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2023-11-14T22:13:20Z"
    assert container_field_path("init", init=True) == "spec.initContainers{init}"


async def test_repeats_within_the_window_are_dropped() -> None:
    api = RecordingApi()
    now = [100.0]
    rec = EventRecorder(api, "n1", dedupe_window=10, clock=lambda: now[0])  # type: ignore[arg-type]
    rec.emit(POD, WARNING, "Unhealthy", "Readiness probe failed")
    rec.emit(POD, WARNING, "Unhealthy", "Readiness probe failed")
    rec.emit(POD, WARNING, "Unhealthy", "Liveness probe failed")
    now[0] = 111.0
    rec.emit(POD, WARNING, "Unhealthy", "Readiness probe failed")
    await rec.drain()
    assert [e["message"] for _, e in api.events] == [
        "Readiness probe failed",
        "Liveness probe failed",
        "Readiness probe failed",
    ]
    assert {ns for ns, _ in api.events} == {"shop"}
