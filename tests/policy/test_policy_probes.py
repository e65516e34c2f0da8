"""Kubelet probes: the paths of a pod's HTTP probes on a port go with the port's policy.

Each row is the pod's containers and the port asked about, and the probe paths
Linkerd's policy controller would send with that port's policy; the pod's
default policy is ``deny``, which admits nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from mesh.k8s.objects import Container, ContainerPort, HttpProbe, Pod
from mesh.policy import DefaultPolicy, PolicySnapshot, Protocol, inbound_server
from mesh.policy.inbound import probe_paths
from mesh.policy.snapshot import PolicyObject
from mesh.policy.translate import server_message
from tests.policy.support import CONFIG, default, namespace, pod, policy, server

DENY = {"config.linkerd.io/default-inbound-policy": "deny"}
APP_PORTS = (ContainerPort(8080, "http"), ContainerPort(9000, "admin"))


def app(*probes: HttpProbe, ports: Sequence[ContainerPort] = APP_PORTS) -> Container:
    return Container("app", tuple(ports), tuple(probes))


def probed(*containers: Container, annotations: dict[str, str] | None = None) -> Pod:
    base = pod(annotations=DENY if annotations is None else annotations)
    return replace(base, containers=(*containers, base.containers[-1]))


@dataclass(frozen=True)
class Row:
    name: str
    containers: Sequence[Container]
    expected: tuple[str, ...]
    port: int = 8080

    def __str__(self) -> str:
        return self.name


ROWS = [
    Row("no probes", [app()], ()),
    Row("a probe on a named port", [app(HttpProbe("http", "/ready"))], ("/ready",)),
    Row("a probe on a numeric port", [app(HttpProbe(8080, "/live"))], ("/live",)),
    Row("a probe port number written as text", [app(HttpProbe("8080", "/live"))], ("/live",)),
    Row("a probe on another port is not included", [app(HttpProbe("admin", "/ready"))], ()),
    Row(
        "a probe on another port is that port's",
        [app(HttpProbe("admin", "/ready"), HttpProbe(8080, "/live"))],
        ("/ready",),
        port=9000,
    ),
    Row("a probe naming no port of its container", [app(HttpProbe("nope", "/ready"))], ()),
    Row(
        "a name is resolved against the probe's own container",
        [
            app(HttpProbe("http", "/mine")),
            Container("other", (ContainerPort(9090, "http"),), (HttpProbe("http", "/theirs"),)),
        ],
        ("/mine",),
    ),
    Row(
        "probes of several containers on the port",
        [app(HttpProbe(8080, "/a")), Container("side", (), (HttpProbe(8080, "/b"),))],
        ("/a", "/b"),
    ),
    Row(
        "liveness, readiness and startup probes are deduplicated and sorted",
        [app(HttpProbe("http", "/ready"), HttpProbe(8080, "/live"), HttpProbe("http", "/ready"))],
        ("/live", "/ready"),
    ),
    Row("the query is dropped", [app(HttpProbe(8080, "/ready?full=1"))], ("/ready",)),
    Row("an unset path is /", [app(HttpProbe(8080))], ("/",)),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_probe_paths(row: Row) -> None:
    p = probed(*row.containers)
    assert probe_paths(p, row.port) == row.expected
    snapshot = PolicySnapshot.of([p, namespace()])
    got = inbound_server(snapshot, CONFIG, p, row.port)
    assert got == replace(default("deny"), probe_paths=row.expected)


@pytest.mark.parametrize("policy_name", [p.value for p in DefaultPolicy])
def test_every_default_policy_carries_the_probe_paths(policy_name: str) -> None:
    p = probed(
        app(HttpProbe("http", "/ready")),
        annotations={"config.linkerd.io/default-inbound-policy": policy_name},
    )
    got = inbound_server(PolicySnapshot.of([p, namespace()]), CONFIG, p, 8080)
    assert got == replace(default(policy_name), probe_paths=("/ready",))


def test_an_opaque_default_port_carries_its_probe_paths() -> None:
    p = probed(app(HttpProbe(3306, "/db")), annotations={})
    got = inbound_server(PolicySnapshot.of([p, namespace()]), CONFIG, p, 3306)
    assert got == replace(default("all-unauthenticated", Protocol.OPAQUE), probe_paths=("/db",))


def test_a_server_carries_the_probe_paths_of_the_ports_it_selects() -> None:
    p = probed(app(HttpProbe("http", "/ready"), HttpProbe(8080, "/live")))
    objects: list[PolicyObject] = [p, namespace(), server(), policy("open")]
    got = inbound_server(PolicySnapshot.of(objects), CONFIG, p, 8080)
    assert got.ref.kind == "server"
    assert len(got.authorizations) == 1
    assert got.probe_paths == ("/live", "/ready")


def test_a_server_nothing_authorizes_still_admits_probes() -> None:
    p = probed(app(HttpProbe("http", "/ready")))
    got = inbound_server(PolicySnapshot.of([p, namespace(), server()]), CONFIG, p, 8080)
    assert (got.authorizations, got.probe_paths) == ((), ("/ready",))


def test_deny_sends_its_probe_paths() -> None:
    p = probed(app(HttpProbe("http", "/ready"), HttpProbe(8080, "/live")))
    message = server_message(inbound_server(PolicySnapshot.of([p, namespace()]), CONFIG, p, 8080))
    assert list(message.authorizations) == []
    assert list(message.probe_paths) == ["/live", "/ready"]
    assert dict(message.labels)["name"] == "deny"
