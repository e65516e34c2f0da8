"""Security: hostile input to any listener of a meshed pod or the control plane costs only
its own connection (SEC-1).

The host plays the attacker (it reaches pod IPs on the netns provider): for every TCP
port declared by the meshed server pod, the meshed client pod and every control-plane
pod, it opens connections that send a truncated body, a bad chunked body, garbage, an
oversized head, a partial head held open (slowloris) and nothing at all. Meanwhile the
meshed client keeps a steady load through its proxy to the meshed server. The client's
latency must stay within the stated bound of a baseline run, no request may fail, and
every hostile connection to a mesh listener (a proxy port, or any control-plane port)
must be closed by the server within ``TIMEOUTS.hostile_close``. On an application port
(redirected to the proxy's inbound side) the same holds except for a silent client: after
the detection timeout the proxy hands it to the application as opaque TCP, as Linkerd
does, and how long it stays is the application's choice. The outbound listener binds
loopback only, so it cannot be reached from outside the pod; the unit tests cover it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod

from fixtures.mesh import Mesh
from fixtures.workloads import Workloads
from harness.kube import Kube, wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import (
    PROXY_CONTAINER,
    assert_meshed,
    converge,
    deploy_server,
    require_pod_network,
    service_url,
    statuses,
)

RATE = 20.0
BASELINE = 200
#: covers opening every hostile connection and the slow ones' lifetime.
DURING = 600
P50_FACTOR, P50_SLACK_MS = 2.0, 20.0
P99_FACTOR, P99_SLACK_MS = 3.0, 100.0
BOUND = (
    f"p50 <= {P50_FACTOR:g} x baseline + {P50_SLACK_MS:g} ms, "
    f"p99 <= {P99_FACTOR:g} x baseline + {P99_SLACK_MS:g} ms"
)
#: a hostile connection that is refused outright (nothing listens) is not a listener.
CONNECT_TIMEOUT = 3.0

_HEAD = b"GET /x HTTP/1.1\r\nHost: hostile\r\n"
KINDS: dict[str, tuple[bytes, bool]] = {
    # kind: (bytes sent, then half-close)
    "truncated-body": (b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc", True),
    "bad-chunked": (
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        True,
    ),
    "garbage": (bytes(range(256)) * 16, True),
    "oversized-head": (_HEAD + b"X-Big: " + b"a" * (256 * 1024) + b"\r\n\r\n", False),
    "slowloris": (_HEAD + b"X-Slow: 1\r\n", False),
    "silent": (b"", False),
}


@dataclass(frozen=True)
class Target:
    pod: str
    ip: str
    port: int
    name: str
    mesh: bool
    """A mesh listener (proxy or control plane), not an application's own server."""

    def __str__(self) -> str:
        return f"{self.pod} {self.ip}:{self.port} ({self.name})"


def _targets(pods: list[Pod], control_plane: set[str]) -> list[Target]:
    found: dict[tuple[str, int], Target] = {}
    for pod in pods:
        ip = pod.status.podIP if pod.status else None
        name = pod.metadata.name if pod.metadata else None
        if not ip or not name or not pod.spec:
            continue
        for container in pod.spec.containers:
            for port in container.ports or []:
                if (port.protocol or "TCP") == "TCP":
                    label = f"{container.name}/{port.name or port.containerPort}"
                    mesh = container.name == PROXY_CONTAINER or name in control_plane
                    found[(ip, port.containerPort)] = Target(
                        name, ip, port.containerPort, label, mesh
                    )
    return sorted(found.values(), key=lambda t: (t.pod, t.port))


def _attack(target: Target, kind: str) -> dict[str, Any]:
    """Send one hostile connection; return how the server ended it."""
    data, half_close = KINDS[kind]
    started = time.monotonic()
    try:
        sock = socket.create_connection((target.ip, target.port), timeout=CONNECT_TIMEOUT)
    except OSError as e:
        return {"outcome": "not-listening", "error": str(e)}
    with sock:
        sock.settimeout(TIMEOUTS.hostile_close)
        with contextlib.suppress(OSError):
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                if len(answer) < 200:
                    answer += chunk[:200]
        except TimeoutError:
            return {"outcome": "still-open", "after_s": round(time.monotonic() - started, 2)}
        except OSError:
            pass
    return {
        "outcome": "closed",
        "after_s": round(time.monotonic() - started, 2),
        "answer": answer[:80].decode("latin-1"),
    }


def _latency_ok(before: dict[str, Any], during: dict[str, Any]) -> bool:
    b, d = before["summary"], during["summary"]
    return bool(
        d["p50_ms"] <= P50_FACTOR * b["p50_ms"] + P50_SLACK_MS
        and d["p99_ms"] <= P99_FACTOR * b["p99_ms"] + P99_SLACK_MS
    )


def _failed(result: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    return [
        (r["i"], r["status"], r.get("error"))
        for r in result["records"]
        if r["status"] != 200 or r.get("error")
    ]


@pytest.mark.conformance(
    short_name="sec-hostile-input",
    description="Truncated, badly chunked, garbage, oversized, slow and silent connections "
    "to every TCP port of a meshed server, a meshed client and the control-plane pods are "
    "each closed by the server, while the meshed client's steady load through its proxy "
    f"loses no request and keeps its latency ({BOUND} of a baseline run) (SEC-1)",
    features=["injection", "hostile-input"],
    profile="mesh",
    conf=["SEC-1"],
)
def test_hostile_input_costs_only_its_own_connection(
    mesh: Mesh, meshed_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    c, ns = mesh.primary, meshed_namespace
    require_pod_network(mesh, c)
    k: Kube = mesh.kube[c]
    servers = deploy_server(mesh, ns, c, replicas=1)
    client = workloads.client(c)
    assert_meshed(k, ns, client.pod)
    url = service_url(mesh, c, ns, "server")
    converge(client, url)

    client_pod = k.client.get(Pod, client.pod, namespace=ns)
    control = [p for n in mesh.adapter.control_plane_namespaces for p in k.pods(n)]
    control_names = {p.metadata.name for p in control if p.metadata and p.metadata.name}
    targets = _targets([*servers, client_pod, *control], control_names)
    evidence.record("targets", [str(t) for t in targets])
    assert any(t.port == 4191 for t in targets), (
        f"expected a proxy admin port (4191) among the declared ports: {[str(t) for t in targets]}"
    )

    before = client.run(url, BASELINE, rate=RATE, label="baseline")
    assert not _failed(before), f"the baseline run failed requests: {statuses(before)}"

    jobs = [(t, kind) for t in targets for kind in KINDS]
    with ThreadPoolExecutor(max_workers=1) as load, ThreadPoolExecutor(len(jobs)) as attackers:
        running = load.submit(client.run, url, DURING, rate=RATE, label="during hostile input")
        wait_for(
            "the load run to be under way (the client's proxy counting its requests)",
            lambda: (
                mesh.metrics(c, ns, client.pod).sum("request_total", direction="outbound")
                > before["summary"]["count"]
                or None
            ),
            TIMEOUTS.convergence,
        )
        with evidence.step(f"{len(jobs)} hostile connections to {len(targets)} ports"):
            attacks: dict[tuple[Target, str], Future[dict[str, Any]]] = {
                (t, kind): attackers.submit(_attack, t, kind) for t, kind in jobs
            }
            outcomes = {key: f.result() for key, f in attacks.items()}
        during = running.result()

    evidence.record(
        "hostile connections",
        [{"target": str(t), "kind": kind, **o} for (t, kind), o in outcomes.items()],
    )
    failed = _failed(during)
    assert not failed, (
        f"expected all {DURING} requests from {client.pod} to {url} to succeed during the "
        f"hostile input; saw {statuses(during)}; first failures (index, status, error): "
        f"{failed[:10]}"
    )
    latency = {
        "before": {q: before["summary"][q] for q in ("p50_ms", "p99_ms")},
        "during": {q: during["summary"][q] for q in ("p50_ms", "p99_ms")},
        "bound": BOUND,
    }
    evidence.record("latency", latency)
    assert _latency_ok(before, during), (
        f"expected the client's latency during hostile input within {BOUND}; saw {latency}"
    )
    open_ones = [
        f"{t} {kind}: open after {o['after_s']}s"
        for (t, kind), o in outcomes.items()
        if o["outcome"] == "still-open" and (t.mesh or kind != "silent")
    ]
    assert not open_ones, (
        f"expected every hostile connection closed by the server within "
        f"{TIMEOUTS.hostile_close}s (silent ones to application ports aside); still open: "
        f"{open_ones} (evidence: 'hostile connections'; latency {latency})"
    )
    listening = {t for (t, _), o in outcomes.items() if o["outcome"] != "not-listening"}
    assert any(t.port == 4191 for t in listening), (
        f"expected the proxies' admin ports to be reachable; outcomes: {outcomes}"
    )
