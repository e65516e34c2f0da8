"""The injector over real HTTPS on 127.0.0.1, trusting the caBundle install would publish."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesh.inject.server import InjectorServer, ServerSettings, server_ssl_context
from mesh.install import create_webhook_cert
from mesh.install.controlplane import WEBHOOK_SERVICE
from tests.inject.support import CONFIG, pod
from tests.install.support import NOW

SERVER_NAME = f"{WEBHOOK_SERVICE}.linkerd.svc"


class FakeNamespaces:
    """Namespace annotations by name; an unknown name fails loudly, a slow one stalls."""

    def __init__(self, known: Mapping[str, Mapping[str, str]], slow: frozenset[str] = frozenset()):
        self.known = known
        self.slow = slow
        self.asked: list[str] = []

    async def __call__(self, name: str) -> Mapping[str, str]:
        self.asked.append(name)
        if name in self.slow:
            await asyncio.sleep(10)
        if name not in self.known:
            raise LookupError(f"namespace {name} is not in the fake")
        return self.known[name]


@dataclass
class Served:
    url: str
    admin: str
    client_ssl: ssl.SSLContext
    namespaces: FakeNamespaces


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    cert = create_webhook_cert(WEBHOOK_SERVICE, "linkerd", "cluster.local", now=NOW)
    (tmp_path / "tls.crt").write_bytes(cert.cert_pem)
    (tmp_path / "tls.key").write_bytes(cert.key_pem)
    namespaces = FakeNamespaces(
        {"app": {"linkerd.io/inject": "enabled"}, "plain": {}}, slow=frozenset({"slow"})
    )
    server = InjectorServer(CONFIG, namespaces, ServerSettings(lookup_timeout=0.2))
    context = server_ssl_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    port, admin = await server.start("127.0.0.1", 0, context, admin_port=0)
    client_ssl = ssl.create_default_context(cadata=cert.cert_pem.decode())
    try:
        yield Served(
            f"https://127.0.0.1:{port}/", f"http://127.0.0.1:{admin}", client_ssl, namespaces
        )
    finally:
        await server.stop()


def review(namespace: str, obj: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "abc",
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": obj,
        },
    }


async def post(served: Served, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            served.url, data=data, ssl=served.client_ssl, server_hostname=SERVER_NAME
        ) as response,
    ):
        return response.status, await response.json()


async def test_injects_a_pod_in_an_enabled_namespace(served: Served) -> None:
    status, answer = await post(served, review("app", pod()))
    assert status == 200
    response = answer["response"]
    assert response["uid"] == "abc"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert any(op["path"] == "/spec/containers/0" for op in ops)
    assert served.namespaces.asked == ["app"]


async def test_leaves_a_pod_in_a_plain_namespace(served: Served) -> None:
    status, answer = await post(served, review("plain", pod()))
    assert status == 200
    assert answer["response"] == {"uid": "abc", "allowed": True}


@pytest.mark.parametrize("namespace", ["missing", "slow"])
async def test_a_failed_or_slow_lookup_still_admits(served: Served, namespace: str) -> None:
    status, answer = await post(served, review(namespace, pod()))
    assert status == 200
    assert answer["response"]["allowed"] is True
    assert f"could not read namespace {namespace}" in answer["response"]["warnings"][0]


async def test_garbage_is_a_bad_request(served: Served) -> None:
    status, answer = await post(served, b"not json")
    assert status == 400
    assert "not JSON" in answer["error"]


async def test_the_certificate_is_checked_against_the_service_name(served: Served) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                served.url, data=b"{}", ssl=served.client_ssl, server_hostname="other.svc"
            ),
        ):
            pass


async def test_admin_port_answers_readiness(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/ready", "/live"):
            async with session.get(served.admin + path) as response:
                assert response.status == 200
