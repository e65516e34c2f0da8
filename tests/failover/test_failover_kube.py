"""The failover controller's Kubernetes edge: what it sends, and how it reads answers."""

from __future__ import annotations

from typing import Any, cast

import httpx2
import pytest
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import EndpointAddress, EndpointSubset
from lightkube.models.meta_v1 import ObjectMeta, Status
from lightkube.resources import core_v1
from lightkube.types import PatchType

from mesh.failover.core import Decision, Patch, RecordEvent, State
from mesh.failover.kube import KubeFailover, TrafficSplitResource, _readiness
from mesh.failover.model import split_from_dict
from mesh.k8s.watching import WatchSettings

RAW = {
    "apiVersion": "split.smi-spec.io/v1alpha2",
    "kind": "TrafficSplit",
    "metadata": {"name": "cart", "namespace": "shop", "uid": "u1", "resourceVersion": "3"},
    "spec": {
        "service": "cart",
        "backends": [{"service": "cart", "weight": 1}, {"service": "cart-east", "weight": 0}],
    },
}


class FakeClient:
    """Records calls; ``fail`` makes ``patch`` raise it."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    async def patch(self, resource: Any, name: str, obj: Any, **kw: Any) -> Any:
        self.calls.append(("patch", (resource, name, obj), kw))
        if self.fail is not None:
            raise self.fail
        after = {**RAW, "metadata": {**RAW["metadata"], "resourceVersion": "4"}}
        return TrafficSplitResource.from_dict(after)

    async def create(self, obj: Any) -> Any:
        self.calls.append(("create", obj, {}))
        return obj


def kube(client: FakeClient) -> KubeFailover:
    return KubeFailover(cast(AsyncClient, client), {"a": "b"}, WatchSettings())


def patch() -> Patch:
    split = split_from_dict(RAW)
    return Patch(split, Decision(State.SECONDARIES, (0, 1), ("cart-east",), "moved"))


def api_error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"code {code}", reason="Whatever"))


async def test_a_patch_is_a_json_patch_of_weights_and_reads_the_result_back() -> None:
    client = FakeClient()
    done = await kube(client).patch(patch())
    assert done.ok
    assert done.result is not None
    assert done.result.resource_version == "4"
    ((what, (resource, name, ops), kw),) = client.calls
    assert (what, resource, name) == ("patch", TrafficSplitResource, "cart")
    assert kw["namespace"] == "shop"
    assert kw["patch_type"] is PatchType.JSON
    assert {op["path"] for op in ops if op["op"] == "replace"} == {
        "/spec/backends/0/weight",
        "/spec/backends/1/weight",
    }


@pytest.mark.parametrize(
    ("code", "conflict"), [(404, True), (409, True), (422, True), (500, False)]
)
async def test_failed_patches_say_whether_the_split_changed(code: int, conflict: bool) -> None:
    done = await kube(FakeClient(api_error(code))).patch(patch())
    assert not done.ok
    assert done.conflict is conflict
    assert f"code {code}" in done.error


async def test_a_transport_failure_is_an_error_not_a_crash() -> None:
    done = await kube(FakeClient(httpx2.ConnectError("refused"))).patch(patch())
    assert not done.ok
    assert not done.conflict
    assert "refused" in done.error


async def test_events_name_the_split() -> None:
    client = FakeClient()
    split = split_from_dict(RAW)
    await kube(client).record_event(RecordEvent(split, "Normal", "FailoverSecondaries", "m"))
    ((_, event, _),) = client.calls
    assert isinstance(event, core_v1.Event)
    assert event.involvedObject.kind == "TrafficSplit"
    assert event.involvedObject.apiVersion == "split.smi-spec.io/v1alpha2"
    assert (event.involvedObject.namespace, event.involvedObject.name) == ("shop", "cart")
    assert event.metadata is not None
    assert event.metadata.namespace == "shop"
    assert (event.type, event.reason) == ("Normal", "FailoverSecondaries")


def test_endpoints_are_ready_with_any_ready_address() -> None:
    meta = ObjectMeta(name="cart", namespace="shop")
    ready = [EndpointSubset(addresses=[EndpointAddress(ip="10.0.0.1")])]
    not_ready = [EndpointSubset(notReadyAddresses=[EndpointAddress(ip="10.0.0.1")])]
    assert _readiness(core_v1.Endpoints(metadata=meta, subsets=ready)).ready
    assert not _readiness(core_v1.Endpoints(metadata=meta, subsets=not_ready)).ready
    assert not _readiness(core_v1.Endpoints(metadata=meta)).ready
