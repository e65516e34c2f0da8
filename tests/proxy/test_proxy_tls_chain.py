"""The verified chain's re-check runs on every Python the project supports (issue 11).

OpenSSL verifies the peer's chain against the trust anchors; ``peer_identity``
then checks that chain again with ``mesh.identity.verify_peer``. Python 3.13
exposes the chain publicly, 3.10-3.12 only underneath; before, the re-check
silently did nothing below 3.13 (the shipped image runs 3.11). These tests
handshake in memory and show the re-check runs and decides. The same handshake
runs under other interpreters named in ``ISTHMUS_EXTRA_PYTHONS`` (comma-separated
paths, with ``cryptography`` and ``pytest`` installed), e.g. a Python 3.13 to cover the public API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from mesh.identity.trust import ChainError
from mesh.proxy import tls as tls_module
from mesh.proxy.tls import HandshakeError, TlsSession, TlsStore, verified_chain
from tests.proxy.proxy_support import Mesh, identity

ROOT = Path(__file__).resolve().parents[2]
CLIENT, SERVER = identity("web"), identity("bb")


def _handshake(mesh: Mesh, *, anchors: bool = True) -> tuple[TlsSession, TlsSession]:
    """Client and server sessions after a full in-memory mTLS handshake."""
    client_store, server_store = (
        TlsStore(mesh.credentials(CLIENT)),
        TlsStore(mesh.credentials(SERVER)),
    )
    client = TlsSession(client_store.client, server_side=False, server_hostname=SERVER)
    server = TlsSession(server_store.server, server_side=True)
    client_done = server_done = False
    for _ in range(10):
        if not client_done:
            client_done = client.handshake(client_store.anchors if anchors else None)
        server.feed(client.outgoing())
        if not server_done:
            server_done = server.handshake(server_store.anchors if anchors else None)
        client.feed(server.outgoing())
        if client_done and server_done:
            return client, server
    raise AssertionError("the in-memory handshake did not finish")


def test_the_verified_chain_is_read_on_this_python() -> None:
    mesh = Mesh()
    client, server = _handshake(mesh)
    assert (client.peer, server.peer) == (SERVER, CLIENT)
    chain = verified_chain(client._obj)
    names = [c.extensions.get_extension_for_class(x509.SubjectAlternativeName) for c in chain[:1]]
    assert names[0].value.get_values_for_type(x509.DNSName) == [SERVER]
    assert chain[-1] == mesh.anchor.certificate, "the verified chain ends at the trust anchor"
    assert len(chain) == 3, f"leaf, issuer, anchor; got {len(chain)} certificates"


def test_the_recheck_decides_the_handshake(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain the re-check refuses fails the handshake (it is not skipped on this Python)."""
    seen: list[int] = []

    def refuse(chain: list[x509.Certificate], anchors: object, *, now: object) -> str:
        seen.append(len(chain))
        raise ChainError("refused by the re-check")

    monkeypatch.setattr(tls_module, "verify_peer", refuse)
    with pytest.raises(HandshakeError, match="refused by the re-check"):
        _handshake(Mesh())
    assert seen, "verify_peer was never called"


def test_without_anchors_there_is_no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> str:
        raise AssertionError("verify_peer called without anchors")

    monkeypatch.setattr(tls_module, "verify_peer", fail)
    client, server = _handshake(Mesh(), anchors=False)
    assert (client.peer, server.peer) == (SERVER, CLIENT)


def test_a_python_without_any_chain_accessor_fails_closed() -> None:
    class Bare:
        pass

    with pytest.raises(HandshakeError, match="no verified certificate chain"):
        verified_chain(Bare())  # type: ignore[arg-type]


_SCRIPT = """
import sys
from tests.proxy.test_proxy_tls_chain import _handshake, SERVER, CLIENT
from tests.proxy.proxy_support import Mesh
from mesh.proxy.tls import verified_chain
client, server = _handshake(Mesh())
chain = verified_chain(client._obj)
assert (client.peer, server.peer) == (SERVER, CLIENT), (client.peer, server.peer)
assert len(chain) == 3, len(chain)
print(sys.version_info[:2], "ok")
"""


@pytest.mark.parametrize(
    "python", [p for p in os.environ.get("ISTHMUS_EXTRA_PYTHONS", "").split(",") if p] or [None]
)
def test_the_same_handshake_under_other_pythons(python: str | None) -> None:
    if python is None:
        pytest.skip("set ISTHMUS_EXTRA_PYTHONS (interpreters with cryptography, pytest)")
    done = subprocess.run(
        [python, "-c", _SCRIPT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{python}: {done.stdout}{done.stderr[-2000:]}"
    assert done.stdout.strip().endswith("ok"), done.stdout
    print(done.stdout, file=sys.stderr)
