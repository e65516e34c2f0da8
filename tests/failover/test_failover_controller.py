"""The failover controller's driver against a fake cluster: watches in, patches and Events out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from mesh.failover.admin import FailoverMetrics
from mesh.failover.controller import FailoverController, FailoverSettings, to_input
from mesh.failover.core import EndpointsListed, Patch, PatchDone, RecordEvent, Resync, SplitsListed
from mesh.failover.kube import EndpointsReadiness
from mesh.failover.model import Backend, Split, split_from_dict
from mesh.k8s.events import Deleted, Listed, Upserted, WatchEvent
from mesh.k8s.objects import ObjectKey

NS = "shop"


def raw_split(rv: int = 1, weights: tuple[int, int] = (1, 0)) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {
            "name": "cart",
            "namespace": NS,
            "uid": "u1",
            "resourceVersion": str(rv),
            "labels": {"app.kubernetes.io/managed-by": "linkerd-failover"},
            "annotations": {"failover.linkerd.io/primary-service": "cart"},
        },
        "spec": {
            "service": "cart",
            "backends": [
                {"service": "cart", "weight": weights[0]},
                {"service": "cart-east", "weight": weights[1]},
            ],
        },
    }


class FakeCluster:
    """One TrafficSplit stored as JSON; JSON Patches applied as the API server would."""

    def __init__(self) -> None:
        self.obj = raw_split()
        self.split_events: asyncio.Queue[WatchEvent[Split]] = asyncio.Queue()
        self.endpoint_events: asyncio.Queue[WatchEvent[EndpointsReadiness]] = asyncio.Queue()
        self.patches: list[list[dict[str, Any]]] = []
        self.events: list[RecordEvent] = []
        self.fail_next: str | None = None

    async def _drain(self, queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
        while True:
            yield await queue.get()

    def splits(self) -> AsyncIterator[WatchEvent[Split]]:
        return self._drain(self.split_events)

    def endpoints(self) -> AsyncIterator[WatchEvent[EndpointsReadiness]]:
        return self._drain(self.endpoint_events)

    async def patch(self, patch: Patch) -> PatchDone:
        ops = patch.ops
        self.patches.append(ops)
        if self.fail_next:
            error, self.fail_next = self.fail_next, None
            return PatchDone(patch, ok=False, error=error)
        for op in ops:
            parts = op["path"].strip("/").split("/")
            target: Any = self.obj
            for part in parts[:-1]:
                target = target[int(part)] if part.isdigit() else target[part]
            last = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
            if op["op"] == "test" and target[last] != op["value"]:
                return PatchDone(patch, ok=False, error="test failed", conflict=True)
            if op["op"] == "replace":
                target[last] = op["value"]
        meta = self.obj["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        after = split_from_dict(self.obj)
        self.split_events.put_nowait(Upserted(after))
        return PatchDone(patch, ok=True, result=after)

    async def record_event(self, event: RecordEvent) -> None:
        self.events.append(event)


def eps(name: str, ready: bool) -> EndpointsReadiness:
    return EndpointsReadiness(NS, name, ready)


async def settle(controller: FailoverController, cluster: FakeCluster) -> None:
    """Feed queued watch events until none is left (the fake's run loop, deterministic)."""
    while not (cluster.split_events.empty() and cluster.endpoint_events.empty()):
        queue: asyncio.Queue[Any] = (
            cluster.split_events if not cluster.split_events.empty() else cluster.endpoint_events
        )
        await controller.step(to_input(queue.get_nowait()))


def weights(cluster: FakeCluster) -> list[int]:
    return [b["weight"] for b in cluster.obj["spec"]["backends"]]


async def test_primary_down_then_up_moves_the_weight_and_back() -> None:
    cluster, metrics = FakeCluster(), FailoverMetrics()
    controller = FailoverController(cluster, metrics)
    cluster.split_events.put_nowait(Listed(Split, (split_from_dict(cluster.obj),)))
    cluster.endpoint_events.put_nowait(
        Listed(EndpointsReadiness, (eps("cart", True), eps("cart-east", True)))
    )
    await settle(controller, cluster)
    assert controller.ready
    assert cluster.patches == []
    assert cluster.events == []

    cluster.endpoint_events.put_nowait(Upserted(eps("cart", False)))
    await settle(controller, cluster)
    assert weights(cluster) == [0, 1]
    assert [e.reason for e in cluster.events] == ["FailoverSecondaries"]
    assert len(cluster.patches) == 1

    cluster.endpoint_events.put_nowait(Upserted(eps("cart", True)))
    await settle(controller, cluster)
    assert weights(cluster) == [1, 0]
    assert [e.reason for e in cluster.events] == ["FailoverSecondaries", "FailoverPrimary"]
    assert len(cluster.patches) == 2

    text = metrics.exposition().decode()
    assert 'failover_shifts_total{namespace="shop",to="secondaries",trafficsplit="cart"} 1.0' in (
        text
    )
    assert 'failover_shifts_total{namespace="shop",to="primary",trafficsplit="cart"} 1.0' in text
    assert 'failover_patches_total{outcome="ok"} 2.0' in text
    assert 'failover_trafficsplit_primary_active{namespace="shop",trafficsplit="cart"} 1.0' in (
        text
    )
    assert "failover_patch_latency_ms_count 2.0" in text


async def test_an_edit_racing_the_patch_is_not_overwritten() -> None:
    cluster, metrics = FakeCluster(), FailoverMetrics()
    controller = FailoverController(cluster, metrics)
    stale = split_from_dict(cluster.obj)
    cluster.obj["metadata"]["resourceVersion"] = "7"  # someone edited it after our list
    await controller.step(SplitsListed((stale,)))
    await controller.step(EndpointsListed({ObjectKey(NS, "cart-east"): True}))
    assert weights(cluster) == [1, 0]  # the test op refused the stale patch
    assert cluster.events == []  # a conflict is not a warning
    assert 'failover_patches_total{outcome="conflict"} 1.0' in metrics.exposition().decode()
    # the edit's watch event arrives: decided afresh and written
    cluster.split_events.put_nowait(Upserted(split_from_dict(cluster.obj)))
    await settle(controller, cluster)
    assert weights(cluster) == [0, 1]


async def test_failed_patch_is_retried_on_resync_and_deletion_drops_metrics() -> None:
    cluster, metrics = FakeCluster(), FailoverMetrics()
    controller = FailoverController(cluster, metrics)
    cluster.fail_next = "503 unavailable"
    cluster.split_events.put_nowait(Listed(Split, (split_from_dict(cluster.obj),)))
    cluster.endpoint_events.put_nowait(Listed(EndpointsReadiness, (eps("cart-east", True),)))
    await settle(controller, cluster)
    assert weights(cluster) == [1, 0]
    assert [e.reason for e in cluster.events] == ["FailoverPatchFailed"]
    await controller.step(Resync())
    await settle(controller, cluster)
    assert weights(cluster) == [0, 1]
    cluster.split_events.put_nowait(Deleted(split_from_dict(cluster.obj)))
    await settle(controller, cluster)
    text = metrics.exposition().decode()
    assert "failover_backend_weight{" not in text
    assert "failover_shifts_total{" not in text
    assert "failover_trafficsplit_primary_active{" not in text


async def test_run_merges_the_watches_until_cancelled() -> None:
    cluster = FakeCluster()
    controller = FailoverController(cluster, FailoverMetrics(), FailoverSettings(resync_period=60))
    cluster.split_events.put_nowait(Listed(Split, (split_from_dict(cluster.obj),)))
    cluster.endpoint_events.put_nowait(Listed(EndpointsReadiness, (eps("cart-east", True),)))
    task = asyncio.create_task(controller.run())
    for _ in range(200):
        if weights(cluster) == [0, 1]:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):  # a swallowed cancellation would hang here
            await task
    assert weights(cluster) == [0, 1]


def test_split_from_dict_rejects_what_it_cannot_use() -> None:
    good = raw_split()
    assert split_from_dict(good).backends == (
        Backend("cart", Decimal(1)),
        Backend("cart-east", Decimal(0)),
    )
    for spec, message in [
        ({"service": "cart"}, "spec.backends is missing"),
        ({"backends": [{"weight": 1}]}, "spec.backends[0].service is missing"),
        ({"backends": [{"service": "a", "weight": -1}]}, "negative"),
        ({"backends": [{"service": "a", "weight": "lots"}]}, "not an integer or a quantity"),
    ]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            split_from_dict({**good, "spec": spec})
