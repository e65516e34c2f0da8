"""Security: proxies reach the control plane only over TLS they verified (SEC-3).

Two observations on a real cluster (netns provider: the capture runs in the node's
network namespace):
- while a meshed pod starts and is certified, every frame on the node is captured;
  the pod's projected token must not appear in any of them, and what the pod sent to
  the identity service must be TLS;
- a proxy told to use an identity service that holds the right name under another trust
  anchor (an impostor run from the mesh's own identity container, with a rogue issuer)
  never becomes ready, and the impostor never receives a request.
"""

from __future__ import annotations

import base64
import copy
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from fixtures.mesh import Mesh
from fixtures.workloads import Workloads
from harness.capture import NodeCapture, Segment, node_netns, tcp_segments
from harness.kube import Kube, wait_for
from harness.providers.netns.kubelet.naming import pid_of_container_id
from harness.reporting import Evidence
from harness.settings import TIMEOUTS

#: where Linkerd's proxies read the token they present to the identity service.
TOKEN_FILE = "/var/run/secrets/tokens/linkerd-identity-token"
PROXY_CONTAINER = "linkerd-proxy"
TLS_HANDSHAKE = 0x16
#: the proxy's log line when a certificate request fails (identity_client).
REFUSED_LOG = "no certificate for"


def _require_netns(mesh: Mesh, cluster: str) -> None:
    if mesh.clusters[cluster].extra.get("provider") != "netns":
        pytest.skip("capturing on the node needs the netns provider")
    if mesh.adapter.identity_api is None:
        pytest.skip(f"mesh {mesh.adapter.name} exposes no identity API to the harness")


def _container_file(k: Kube, namespace: str, pod: str, container: str, path: str) -> bytes:
    """A file as ``container`` of ``pod`` sees it (netns: through its process's root)."""
    status = k.client.get(Pod, pod, namespace=namespace).status
    assert status is not None, f"[{k.name}] {namespace}/{pod} has no status"
    ids = [s.containerID for s in (status.containerStatuses or []) if s.name == container]
    pid = pid_of_container_id(ids[0] or "") if ids else None
    assert pid is not None, f"[{k.name}] no process for {namespace}/{pod} {container}: {ids}"
    # In its mount namespace and root: the path may cross symlinks (/var/run -> /run)
    # that only resolve there.
    argv = ["nsenter", "--target", str(pid), "--mount", "--root", "cat", path]
    done = subprocess.run(argv, capture_output=True, timeout=TIMEOUTS.http_call)
    assert done.returncode == 0, f"[{k.name}] cannot read {path} of {pod}: {done.stderr!r}"
    return done.stdout


def _pod_ip(k: Kube, namespace: str, name: str) -> str:
    pod = k.client.get(Pod, name, namespace=namespace)
    assert pod.status is not None
    assert pod.status.podIP, f"[{k.name}] {namespace}/{name} has no IP"
    return pod.status.podIP


def _first_payloads(segments: list[Segment], src: str, dst: str, dport: int) -> list[bytes]:
    """The first non-empty payload of each connection ``src`` -> ``dst:dport``."""
    first: dict[int, bytes] = {}
    for s in segments:
        if s.src == src and s.dst == dst and s.dport == dport and s.payload:
            first.setdefault(s.sport, s.payload)
    return list(first.values())


@pytest.mark.conformance(
    short_name="security-token-never-in-clear",
    description="While a meshed pod starts and is certified, a capture of every frame on its "
    "node never contains the pod's service-account token, and every connection the pod "
    "opens to the identity service starts with a TLS handshake (SEC-3)",
    features=["injection", "identity-api"],
    profile="security",
    conf=["SEC-3"],
)
def test_the_token_never_crosses_the_pod_network_in_clear(
    mesh: Mesh, meshed_namespace: str, workloads: Workloads, evidence: Evidence, tmp_path: Path
) -> None:
    c, ns = mesh.primary, meshed_namespace
    _require_netns(mesh, c)
    api = mesh.adapter.identity_api
    assert api is not None
    k = mesh.kube[c]
    identity_ips = k.endpoint_addresses(api.service_name, api.namespace)
    assert identity_ips, f"[{c}] no ready endpoints for {api.namespace}/{api.service_name}"
    netns = node_netns(mesh.clusters[c].node_ips[0])
    with (
        evidence.step("start a meshed pod while capturing on the node"),
        NodeCapture(netns, tmp_path / "node.cap") as capture,
    ):
        client = workloads.client(c)
    token = _container_file(k, ns, client.pod, PROXY_CONTAINER, TOKEN_FILE).decode().strip()
    assert token.count(".") == 2, f"expected a JWT in {TOKEN_FILE} of {client.pod}, read {token!r}"
    segments = tcp_segments(capture.data)
    client_ip = _pod_ip(k, ns, client.pod)
    to_identity = [
        p for ip in identity_ips for p in _first_payloads(segments, client_ip, ip, api.port)
    ]
    evidence.record(
        "capture",
        {
            "netns": netns,
            "bytes": len(capture.data),
            "tcp_segments": len(segments),
            "connections_to_identity": len(to_identity),
        },
    )
    assert to_identity, (
        f"expected the capture in {netns} to see {client.pod} ({client_ip}) connect to the "
        f"identity service {sorted(identity_ips)}:{api.port} while it was certified; it saw "
        f"{len(segments)} TCP segments and none of those (the capture missed the exchange)"
    )
    not_tls = [p[:16] for p in to_identity if p[0] != TLS_HANDSHAKE]
    assert not not_tls, (
        f"expected every connection from {client.pod} to the identity service to start with a "
        f"TLS handshake (0x16); these started otherwise: {not_tls}"
    )
    needles = {"token": token.encode(), "token signature": token.rsplit(".", 1)[1].encode()}
    for what, needle in needles.items():
        hits = [f"{s.src}:{s.sport}->{s.dst}:{s.dport}" for s in segments if needle in s.payload]
        hits += ["(across frames)"] if not hits and needle in capture.data else []
        assert not hits, f"the pod's {what} crossed the node's network in clear: {hits[:5]}"


def _ca(name: str, key: ec.EllipticCurvePrivateKey, signer: Any, issuer_name: x509.Name) -> Any:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signer, hashes.SHA256())
    )


def _rogue_trust(trust_domain: str, control_plane_ns: str) -> dict[str, bytes]:
    """A rogue anchor and an issuer under it, named as the real ones are."""
    anchor_key = ec.generate_private_key(ec.SECP256R1())
    anchor_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"root.{trust_domain}")])
    anchor = _ca(f"root.{trust_domain}", anchor_key, anchor_key, anchor_name)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    issuer = _ca(f"identity.{control_plane_ns}.{trust_domain}", issuer_key, anchor_key, anchor_name)
    pem = serialization.Encoding.PEM
    return {
        "tls.crt": issuer.public_bytes(pem),
        "tls.key": issuer_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "ca-bundle.crt": anchor.public_bytes(pem),
    }


def _impostor(mesh: Mesh, k: Kube, namespace: str, trust_domain: str) -> tuple[str, str]:
    """The mesh's own identity container, with a rogue issuer and anchor mounted instead.

    Returns the manifest and the container's name.
    """
    api = mesh.adapter.identity_api
    assert api is not None
    deployment = k.client.get(Deployment, api.service_name, namespace=api.namespace)
    assert deployment.spec is not None
    template = deployment.spec.template
    assert template.spec is not None
    (container,) = template.spec.containers
    rogue = _rogue_trust(trust_domain, api.namespace)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "impostor-trust", "namespace": namespace},
        "data": {name: base64.b64encode(data).decode() for name, data in rogue.items()},
    }
    k.apply(_yaml(secret), namespace=namespace)
    # Every volume of the identity pod (issuer secret, trust roots) becomes the rogue secret,
    # which holds the files under the names both mounts are read by.
    volumes = [
        {"name": v.name, "secret": {"secretName": "impostor-trust"}}
        for v in template.spec.volumes or []
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "impostor-identity",
            "namespace": namespace,
            "annotations": {"linkerd.io/inject": "disabled"},
        },
        "spec": {"containers": [_to_dict(container)], "volumes": volumes},
    }
    return _yaml(pod), container.name


def _to_dict(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.to_dict()
    return data


def _yaml(obj: dict[str, Any]) -> str:
    return str(yaml.safe_dump(obj, sort_keys=False))


def _victim(source: Pod, identity_addr: str) -> dict[str, Any]:
    """A copy of ``source``'s proxy alone, told to ask ``identity_addr`` for its certificate."""
    assert source.spec is not None
    assert source.metadata is not None
    (proxy,) = [_to_dict(c) for c in source.spec.containers if c.name == PROXY_CONTAINER]
    proxy = copy.deepcopy(proxy)
    for var in proxy["env"]:
        if var["name"] == "LINKERD2_PROXY_IDENTITY_SVC_ADDR":
            var["value"] = identity_addr
    mounted = {m["name"] for m in proxy.get("volumeMounts", [])}
    volumes = [_to_dict(v) for v in source.spec.volumes or [] if v.name in mounted]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "victim", "annotations": {"linkerd.io/inject": "disabled"}},
        "spec": {
            "serviceAccountName": source.spec.serviceAccountName or "default",
            "containers": [proxy],
            "volumes": volumes,
        },
    }


def _log(k: Kube, namespace: str, pod: str, container: str) -> str:
    r = k.http.get(
        f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params={"container": container}
    )
    return r.text if r.status_code == 200 else ""


@pytest.mark.conformance(
    short_name="security-proxy-refuses-foreign-identity-service",
    description="A proxy whose identity service presents the right name under another trust "
    "anchor refuses it: the proxy logs the failed certification, never becomes ready, and "
    "the impostor receives no request (so no token) (SEC-3)",
    features=["injection", "identity-api"],
    profile="security",
    conf=["SEC-3"],
)
def test_a_proxy_refuses_an_identity_service_under_another_anchor(
    mesh: Mesh, meshed_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    c, ns = mesh.primary, meshed_namespace
    _require_netns(mesh, c)
    k = mesh.kube[c]
    client = workloads.client(c)  # the control: certified by the real identity service
    with evidence.step("start an impostor identity service under a rogue anchor"):
        manifest, impostor_container = _impostor(mesh, k, ns, mesh.clusters[c].trust_domain)
        k.apply(manifest, namespace=ns)
        k.wait_pod_ready("impostor-identity", ns)
    api = mesh.adapter.identity_api
    assert api is not None
    impostor_ip = _pod_ip(k, ns, "impostor-identity")
    source = k.client.get(Pod, client.pod, namespace=ns)
    with evidence.step("start a proxy pointed at the impostor"):
        k.apply(_yaml(_victim(source, f"{impostor_ip}:{api.port}")), namespace=ns)

    def refused() -> str | None:
        log = _log(k, ns, "victim", PROXY_CONTAINER)
        return log if REFUSED_LOG in log else None

    log = wait_for(
        f"[{c}] the proxy of {ns}/victim logging a refused certification",
        refused,
        TIMEOUTS.convergence,
        lambda: _log(k, ns, "victim", PROXY_CONTAINER)[-2000:],
    )
    evidence.record("victim log", log[-2000:])
    victim = k.client.get(Pod, "victim", namespace=ns)
    ready = [
        cond.status
        for cond in (victim.status.conditions or [] if victim.status else [])
        if cond.type == "Ready"
    ]
    assert ready != ["True"], f"expected {ns}/victim never to become ready; it is ({log[-500:]})"
    impostor_log = _log(k, ns, "impostor-identity", impostor_container)
    evidence.record("impostor log", impostor_log[-2000:])
    served = [
        line for line in impostor_log.splitlines() if "certified " in line or "refused " in line
    ]
    assert not served, (
        f"expected the impostor never to receive a Certify request from a proxy that cannot "
        f"verify it; its log shows {served[:3]}"
    )
