"""Security: tap is served only over mTLS, and only to the identities allowed to tap (SEC-2).

From the host (pod IPs are reachable on flat topologies), a meshed server's tap port
(4190) is asked for its events:
- with a certificate for the tap identity the proxies allow (viz's ``tap`` service
  account, as Linkerd viz), signed by the cluster's issuer: the events of a meshed
  client's requests arrive, naming the client's identity;
- with no certificate, in plaintext, or with a certificate for another workload of the
  mesh: the connection is closed and not one byte of HTTP comes back;
- the plaintext admin port (4191) has no ``/tap``.
"""

from __future__ import annotations

import json
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fixtures.mesh import Mesh
from fixtures.workloads import Workloads
from harness.kube import wait_for
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._certs import Leaf, leaf
from suites.mesh._support import deploy_server, pod_name, require_pod_network, service_url

TAP_PORT = 4190
ADMIN_PORT = 4191
#: the identity Linkerd viz's tap service holds: ``tap`` in ``linkerd-viz``.
TAP_NAMESPACE, TAP_ACCOUNT = "linkerd-viz", "tap"
EVENTS = 3
#: requests the meshed client sends per round while the tap stream is open.
ROUND = 5


def _tap(
    ip: str, client: Leaf | None, server_id: str | None, anchor: Path, authority: str = ""
) -> bytes:
    """Everything the tap port answers to one ``GET /tap`` (TLS unless ``server_id`` is None).

    ``authority`` keeps the stream to requests for it (the kubelet's probes have another).
    """
    raw = socket.create_connection((ip, TAP_PORT), timeout=TIMEOUTS.http_call)
    sock: socket.socket = raw
    received = b""
    try:
        if server_id is not None:
            context = ssl.create_default_context(cafile=str(anchor))
            if client is not None:
                context.load_cert_chain(str(client.chain), str(client.key))
            sock = context.wrap_socket(raw, server_hostname=server_id)
        query = f"limit={EVENTS}&direction=inbound"
        if authority:
            query += f"&authority={authority}"
        sock.sendall(f"GET /tap?{query} HTTP/1.1\r\nhost: {ip}\r\n\r\n".encode())
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
            if received.endswith(b"0\r\n\r\n"):  # the stream's last chunk: limit reached
                return received
    except (ConnectionError, ssl.SSLError):
        return b""
    except TimeoutError:
        return received
    finally:
        sock.close()


def _events(answer: bytes) -> list[dict[str, object]]:
    events = []
    for line in answer.split(b"\n"):
        line = line.strip()
        if line.startswith(b"{"):
            events.append(json.loads(line))
    return events


@pytest.mark.conformance(
    short_name="security-tap-mtls-only",
    description="A proxy's tap port serves events only over mTLS to the tap identity: a "
    "client with that identity gets a meshed client's requests with the client's identity; "
    "no certificate, plaintext or another workload's identity gets the connection closed "
    "with no answer; the plaintext admin port has no /tap (SEC-2)",
    features=["injection", "mtls"],
    profile="security",
    conf=["SEC-2"],
)
def test_tap_is_served_only_to_the_tap_identity_over_mtls(
    mesh: Mesh, meshed_namespace: str, workloads: Workloads, evidence: Evidence, tmp_path: Path
) -> None:
    c, ns = mesh.primary, meshed_namespace
    require_pod_network(mesh, c)
    k = mesh.kube[c]
    with evidence.step("deploy a meshed server and client"):
        (server,) = deploy_server(mesh, ns, c, replicas=1)
        client = workloads.client(c)
    assert server.status is not None
    ip = server.status.podIP
    assert ip, f"[{c}] {ns}/{pod_name(server)} has no IP"
    server_id = mesh.identity(c, ns, "server")
    anchor = mesh.trust.anchor_cert
    issuer = mesh.trust.issuer(c)
    tapper = leaf(issuer, mesh.identity(c, TAP_NAMESPACE, TAP_ACCOUNT), tmp_path / "tap")
    other = leaf(issuer, mesh.identity(c, ns, "default"), tmp_path / "other")

    refused = {
        "no client certificate": _tap(ip, None, server_id, anchor),
        "plaintext": _tap(ip, None, None, anchor),
        "another workload's identity": _tap(ip, other, server_id, anchor),
    }
    evidence.record("refused answers", {k: v[:200].decode("latin-1") for k, v in refused.items()})
    for who, answer in refused.items():
        assert answer == b"", (
            f"expected {ns}/{pod_name(server)}:{TAP_PORT} to close the connection of a tap "
            f"client with {who} without a byte of answer; it sent {answer[:300]!r}"
        )
    admin = k.pod_proxy(ns, pod_name(server), ADMIN_PORT, "/tap")
    assert admin.status_code == 404, (
        f"expected no /tap on the plaintext admin port {ADMIN_PORT}; it answered "
        f"{admin.status_code}: {admin.text[:200]}"
    )

    url = service_url(mesh, c, ns, "server")
    with ThreadPoolExecutor(max_workers=1) as pool:
        stream = pool.submit(_tap, ip, tapper, server_id, anchor, urlsplit(url).netloc)

        def tapped() -> bytes | None:
            client.run(url, ROUND)
            return stream.result() if stream.done() else None

        answer = wait_for(
            f"[{c}] {EVENTS} tap events from {ns}/{pod_name(server)} for {tapper.identity}",
            tapped,
            TIMEOUTS.convergence,
            lambda: "the tap stream is still open",
        )
    events = _events(answer)
    evidence.record("tap events", events)
    assert len(events) == EVENTS, f"expected {EVENTS} events; got {answer[:500]!r}"
    first = events[0]
    assert "requestInitEvent" in first, f"expected a request event first; got {first}"
    source = first.get("source")
    assert isinstance(source, dict)
    client_id = mesh.identity(c, ns, "default")
    assert source["metadata"].get("client_id") == client_id, (
        f"expected the tapped request to name the meshed client {client_id}; it shows {source}"
    )
