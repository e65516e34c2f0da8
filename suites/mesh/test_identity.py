"""Mesh: the identity service certifies a workload only as its own service account.

The host plays a proxy: it asks the identity service directly (gRPC from the host to an
identity pod, so the netns provider only) with a token for the ``default`` service account
bound to a pod of the test namespace (TokenRequest, the audience the identity service
expects) and a CSR made here. The .proto comes from the adapter and is compiled at run
time; nothing of the mesh is imported.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from lightkube.resources.core_v1 import Pod

from fixtures.mesh import Mesh
from fixtures.workloads import Workloads
from harness.adapters import IdentityApi
from harness.adapters.protoload import load_messages, unary
from harness.kube import Kube
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._certs import csr, dns_sans
from suites.mesh._support import require_pod_network

OTHER_SA = """
apiVersion: v1
kind: ServiceAccount
metadata:
  name: other
"""
#: how long the token asked for here lives (the minimum the API server allows).
TOKEN_SECONDS = 600
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}


def _token(k: Kube, namespace: str, pod: Pod, audience: str) -> str:
    """A token of ``default`` in ``namespace`` for ``audience``, bound to ``pod``."""
    meta = pod.metadata
    assert meta is not None
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience],
            "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.name,
                "uid": meta.uid,
            },
        },
    }
    r = k.http.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/default/token", json=body)
    assert r.status_code == 201, f"[{k.name}] TokenRequest answered {r.status_code}: {r.text}"
    token: str = r.json()["status"]["token"]
    return token


class Certifier:
    """Certify calls to one identity pod."""

    def __init__(
        self, api: IdentityApi, address: str, server_name: str = "", anchors: bytes = b""
    ) -> None:
        classes = load_messages(api.proto, [api.request, api.response], api.include_dirs)
        self.request = classes[api.request]
        target = f"{address}:{api.port}"
        if api.plaintext:
            self.channel = grpc.insecure_channel(target)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=anchors)
            options = [("grpc.ssl_target_name_override", server_name)]
            self.channel = grpc.secure_channel(target, credentials, options=options)
        self.call = unary(
            self.channel, api.service, api.method, self.request, classes[api.response]
        )

    def certify(self, identity: str, token: str, san: str) -> tuple[grpc.StatusCode, Any, str]:
        message = self.request(
            identity=identity, token=token.encode(), certificate_signing_request=csr(san)
        )
        try:
            response = self.call(message, timeout=TIMEOUTS.http_call)
        except grpc.RpcError as e:
            return e.code(), None, str(e.details())
        return grpc.StatusCode.OK, response, ""

    def close(self) -> None:
        self.channel.close()


@pytest.mark.conformance(
    short_name="mesh-identity-refuses-other-sa",
    description="The identity service certifies a pod's token for its own service account "
    "but refuses a request for another service account's identity, and a CSR whose DNS SAN "
    "is not the identity asked for (CONF-31)",
    features=["identity-api"],
    profile="mesh",
    conf=["CONF-31"],
)
def test_identity_refuses_csr_for_another_service_account(
    mesh: Mesh, namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    """(f) Certify with a valid pod token: own identity yes; another SA's identity no."""
    api = mesh.adapter.identity_api
    if api is None:
        pytest.skip(f"mesh {mesh.adapter.name} exposes no identity API to the harness")
    c, ns = mesh.primary, namespace
    require_pod_network(mesh, c)
    k = mesh.kube[c]
    k.apply(OTHER_SA, namespace=ns)
    client = workloads.client(c)
    token = _token(k, ns, k.client.get(Pod, client.pod, namespace=ns), api.token_audience)
    addresses = sorted(k.endpoint_addresses(api.service_name, api.namespace))
    assert addresses, (
        f"[{c}] expected ready endpoints for the identity service "
        f"{api.namespace}/{api.service_name}; there are none ({k.describe_pods(api.namespace)})"
    )
    mine = mesh.identity(c, ns, "default")
    other = mesh.identity(c, ns, "other")
    server_name = mesh.identity(c, api.namespace, api.service_account)
    certifier = Certifier(api, addresses[0], server_name, mesh.trust.anchor_cert.read_bytes())
    try:
        code, issued, details = certifier.certify(mine, token, mine)
        evidence.record("own identity", {"code": code.name, "details": details})
        assert code == grpc.StatusCode.OK, (
            f"expected {addresses[0]}:{api.port} to certify {mine} for a token of that service "
            f"account (the control case); it answered {code.name}: {details}"
        )
        assert dns_sans(issued.leaf_certificate) == [mine], (
            f"expected the issued leaf to name exactly {mine}; "
            f"it names {dns_sans(issued.leaf_certificate)}"
        )
        cases = {
            "another SA's identity and CSR": (other, other),
            "own identity, CSR naming another SA": (mine, other),
        }
        for what, (identity, san) in cases.items():
            code, issued, details = certifier.certify(identity, token, san)
            evidence.record(what, {"identity": identity, "csr_san": san, "code": code.name})
            assert code in REFUSALS, (
                f"expected the identity service to refuse {what} (identity {identity}, CSR SAN "
                f"{san}, token of {ns}/default) with one of {sorted(s.name for s in REFUSALS)}; "
                f"it answered {code.name} {details}"
                + (f" and issued {dns_sans(issued.leaf_certificate)}" if issued else "")
            )
    finally:
        certifier.close()
