"""SEC-4: a watch skips objects it cannot convert, says so, and keeps watching.

A fake lightkube client lists and watches scripted objects. The generic tests
use a converter that refuses objects named ``bad*``; the per-service tests feed
every kind the destination and policy services watch (through their real
``KubeObjectSource``) objects their real converters cannot use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from mesh.destination import server as destination_server
from mesh.k8s.events import Deleted, Listed, Upserted
from mesh.k8s.watching import UNUSABLE_REASON, event_reporter, list_and_watch
from mesh.policy import server as policy_server


def obj(name: str, namespace: str = "demo", kind: str = "Thing", spec: Any = "junk") -> Any:
    """A raw object as lightkube would hand it over (only what the tests read)."""
    meta = SimpleNamespace(name=name, namespace=namespace, uid=f"uid-{name}")
    return SimpleNamespace(apiVersion="v1", kind=kind, metadata=meta, spec=spec)


class _Listing:
    def __init__(self, objects: list[Any]) -> None:
        self._objects = objects
        self.resourceVersion = "7"

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        for o in self._objects:
            yield o


@dataclass
class FakeClient:
    """Lists and watches scripted objects per resource; records created Events."""

    listed: dict[str, list[Any]] = field(default_factory=dict)
    changes: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    created: list[Any] = field(default_factory=list)
    fail_create: bool = False
    grew: asyncio.Event = field(default_factory=asyncio.Event)

    def list(self, resource: Any, namespace: str = "*", **_: Any) -> _Listing:
        return _Listing(self.listed.get(resource.__name__, []))

    async def watch(self, resource: Any, **_: Any) -> AsyncIterator[tuple[str, Any]]:
        for change in self.changes.get(resource.__name__, []):
            yield change
        await asyncio.Event().wait()

    async def create(self, event: Any) -> Any:
        if self.fail_create:
            raise PermissionError("events is forbidden")
        self.created.append(event)
        self.grew.set()
        return event


class Resource:
    """Stands for a lightkube resource class (only its name is read)."""


def convert(raw: Any) -> str:
    name = str(raw.metadata.name)
    if name.startswith("bad"):
        raise TypeError(f"cannot use {name}")
    return f"{name}@{raw.spec}"


async def take(stream: AsyncIterator[Any], n: int) -> list[Any]:
    out: list[Any] = []
    try:
        async with asyncio.timeout(5):
            while len(out) < n:
                out.append(await anext(stream))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return out


async def test_an_unusable_object_is_skipped_reported_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SEC-4: listing and watching continue past objects the converter raises on."""
    client = FakeClient(
        listed={"Resource": [obj("good"), obj("bad-listed")]},
        changes={
            "Resource": [
                ("ADDED", obj("bad-added")),
                ("ADDED", obj("later", spec="v1")),
                ("MODIFIED", obj("later", spec="v2")),
            ]
        },
    )
    caplog.set_level(logging.WARNING, logger="mesh.k8s.watching")
    stream = list_and_watch(
        client,  # type: ignore[arg-type]
        Resource,  # type: ignore[type-var]
        convert,
        str,
        report=event_reporter(client, "linkerd-test"),  # type: ignore[arg-type]
    )
    events = await take(stream, 3)
    assert events == [Listed(str, ("good@junk",)), Upserted("later@v1"), Upserted("later@v2")]
    named = [(e.involvedObject.namespace, e.involvedObject.name) for e in client.created]
    assert named == [("demo", "bad-listed"), ("demo", "bad-added")]
    event = client.created[0]
    assert (event.type, event.reason, event.metadata.namespace) == (
        "Warning",
        UNUSABLE_REASON,
        "demo",
    )
    assert "linkerd-test skips this object: TypeError: cannot use bad-listed" in event.message
    logged = [r.getMessage() for r in caplog.records]
    assert any("skipping Thing demo/bad-listed" in m for m in logged), logged
    assert any("skipping Thing demo/bad-added" in m for m in logged), logged


async def test_an_object_that_becomes_unusable_is_forgotten() -> None:
    """SEC-4: consumers see Deleted (its last usable state) rather than keep a stale version."""
    client = FakeClient(
        listed={"Resource": [obj("web")]},
        changes={
            "Resource": [
                ("MODIFIED", obj("web", spec="bad")),
                ("DELETED", obj("bad-never-known")),
                ("ADDED", obj("api")),
                ("DELETED", obj("api")),
            ]
        },
    )

    def strict(raw: Any) -> str:
        if raw.spec == "bad":
            raise ValueError("spec is bad")
        return convert(raw)

    stream = list_and_watch(client, Resource, strict, str)  # type: ignore[arg-type, type-var]
    events = await take(stream, 4)
    assert events == [
        Listed(str, ("web@junk",)),
        Deleted("web@junk"),
        Upserted("api@junk"),
        Deleted("api@junk"),
    ]


async def test_a_failing_event_write_does_not_stop_the_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SEC-4: reporting is best effort (e.g. RBAC forbids Events): logged, the watch goes on."""
    client = FakeClient(
        listed={"Resource": [obj("bad")]},
        changes={"Resource": [("ADDED", obj("ok"))]},
        fail_create=True,
    )
    caplog.set_level(logging.WARNING, logger="mesh.k8s.watching")
    stream = list_and_watch(
        client,  # type: ignore[arg-type]
        Resource,  # type: ignore[type-var]
        convert,
        str,
        report=event_reporter(client, "linkerd-test"),  # type: ignore[arg-type]
    )
    assert await take(stream, 2) == [Listed(str, ()), Upserted("ok@junk")]
    assert any(
        "cannot record an Event for Thing demo/bad" in r.getMessage() for r in caplog.records
    )


def _junk_for_every_resource(kinds: list[str]) -> FakeClient:
    """Each resource lists one junk object and then watches another one being added."""
    return FakeClient(
        listed={k: [obj(f"junk-{k.lower()}", kind=k)] for k in kinds},
        changes={k: [("ADDED", obj(f"junk2-{k.lower()}", kind=k))] for k in kinds},
    )


@pytest.mark.parametrize(
    ("service", "kinds"),
    [
        (destination_server, ["Service", "EndpointSlice", "Pod"]),
        (
            policy_server,
            [
                "Pod",
                "Namespace",
                "Server",
                "ServerAuthorization",
                "AuthorizationPolicy",
                "MeshTLSAuthentication",
                "NetworkAuthentication",
            ],
        ),
    ],
    ids=["destination", "policy"],
)
async def test_every_watched_kind_survives_objects_it_cannot_use(
    service: Any, kinds: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """SEC-4: the real sources list every kind (without the junk) and report each junk object."""
    client = _junk_for_every_resource(kinds)
    caplog.set_level(logging.WARNING, logger="mesh.k8s.watching")
    stream = service.KubeObjectSource(client).events()
    events = await take(stream, len(kinds))
    listed = [e for e in events if isinstance(e, Listed)]
    assert len(listed) == len(kinds), f"expected one Listed per kind, got {events}"
    assert all(e.objects == () for e in listed), f"junk was passed on: {listed}"
    # the watches started: each kind's second junk object is reported too
    async with asyncio.timeout(5):
        while len(client.created) < 2 * len(kinds):
            client.grew.clear()
            await client.grew.wait()
    reported = sorted(e.involvedObject.name for e in client.created)
    expected = sorted(f"{p}-{k.lower()}" for k in kinds for p in ("junk", "junk2"))
    assert reported == expected
    assert {e.source.component for e in client.created} == {service.COMPONENT}


async def test_the_real_resources_are_the_ones_listed() -> None:
    """The fake serves by class name: make sure those are the names the sources watch."""
    seen: list[str] = []

    class Recording(FakeClient):
        def list(self, resource: Any, namespace: str = "*", **_: Any) -> _Listing:
            seen.append(resource.__name__)
            return super().list(resource, namespace)

    for service in (destination_server, policy_server):
        client = Recording()
        stream = service.KubeObjectSource(client).events()
        await take(stream, 1)
    assert sorted(set(seen)) == sorted(
        {
            "Service",
            "EndpointSlice",
            "Pod",
            "Namespace",
            "Server",
            "ServerAuthorization",
            "AuthorizationPolicy",
            "MeshTLSAuthentication",
            "NetworkAuthentication",
            "TrafficSplit",
            "HTTPRoute",
        }
    )


@dataclass(frozen=True)
class Marked:
    """What a converter that keeps unusable objects (as policy's do) returns."""

    name: str
    error: str = ""


def keep_marked(raw: Any) -> Marked:
    name = str(raw.metadata.name)
    return Marked(name, f"{name} has no usable spec" if name.startswith("bad") else "")


async def test_an_object_kept_marked_unusable_is_reported_and_passed_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SEC-4: an object a converter keeps with an ``error`` gets the same Event and log line."""
    client = FakeClient(
        listed={"Resource": [obj("good"), obj("bad-listed", kind="Server")]},
        changes={"Resource": [("ADDED", obj("bad-added", kind="Server")), ("ADDED", obj("ok"))]},
    )
    caplog.set_level(logging.WARNING, logger="mesh.k8s.watching")
    stream = list_and_watch(
        client,  # type: ignore[arg-type]
        Resource,  # type: ignore[type-var]
        keep_marked,
        Marked,
        report=event_reporter(client, "linkerd-policy"),  # type: ignore[arg-type]
    )
    events = await take(stream, 3)
    assert events == [
        Listed(Marked, (Marked("good"), Marked("bad-listed", "bad-listed has no usable spec"))),
        Upserted(Marked("bad-added", "bad-added has no usable spec")),
        Upserted(Marked("ok")),
    ]
    named = [(e.involvedObject.kind, e.involvedObject.name) for e in client.created]
    assert named == [("Server", "bad-listed"), ("Server", "bad-added")]
    assert all(e.reason == UNUSABLE_REASON for e in client.created)
    assert "ValueError: bad-added has no usable spec" in client.created[1].message
    logged = [r.getMessage() for r in caplog.records]
    assert any("skipping Server demo/bad-added" in m for m in logged), logged
