"""gRPC credentials for the control plane: who may serve it and who may call it.

Rules (SEC-3), after Linkerd, where each control-plane service is reached at
an identity the proxy is told (``LINKERD2_PROXY_{IDENTITY,DESTINATION,POLICY}_SVC_NAME``):
- The trust anchors are the only roots; a server certificate must chain to one
  of them *and* name the expected identity as its DNS SAN (gRPC checks it
  against ``grpc.ssl_target_name_override``, which is also the SNI).
- The identity service is called with server authentication only (the caller
  has no certificate yet: that is what it asks for); destination and policy are
  called with mutual TLS, the caller presenting its workload certificate.
- ``ServingCertificate`` holds a server's current certificate; the credentials
  it gives are dynamic, so each new handshake is served with the newest one
  (rotation without a restart) while open connections keep theirs.
- Nothing here touches the network: these are credential and option builders.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import cast

import grpc
from grpc import aio

__all__ = [
    "ServingCertificate",
    "control_channel",
    "control_channel_options",
]

ChannelOption = tuple[str, str | int]


def control_channel_options(
    server_name: str, base: Sequence[ChannelOption] = ()
) -> tuple[ChannelOption, ...]:
    """Channel options checking the server's certificate names ``server_name``."""
    if not server_name:
        raise ValueError("a control-plane channel needs the server's identity to check")
    return (*base, ("grpc.ssl_target_name_override", server_name))


def control_channel(
    target: str,
    server_name: str,
    trust_anchors_pem: bytes,
    *,
    client_chain_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    options: Sequence[ChannelOption] = (),
) -> aio.Channel:
    """A TLS channel to ``target`` that accepts only ``server_name`` under the anchors.

    With ``client_chain_pem`` and ``client_key_pem`` the channel presents them
    (mutual TLS); both or neither must be given.
    """
    if (client_chain_pem is None) != (client_key_pem is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=trust_anchors_pem,
        private_key=client_key_pem,
        certificate_chain=client_chain_pem,
    )
    return aio.secure_channel(
        target, credentials, options=control_channel_options(server_name, options)
    )


class ServingCertificate:
    """A control-plane server's certificate, replaceable while it serves.

    ``install`` a key and chain (leaf first) before asking for ``credentials``;
    later installs are picked up at the next handshake. With
    ``require_client_auth`` callers must present a certificate chaining to the
    anchors (mutual TLS); otherwise none is asked for.
    """

    def __init__(self, trust_anchors_pem: bytes, *, require_client_auth: bool) -> None:
        if b"-----BEGIN CERTIFICATE-----" not in trust_anchors_pem:
            raise ValueError("the trust anchors hold no PEM certificate")
        self.trust_anchors_pem = trust_anchors_pem
        self.require_client_auth = require_client_auth
        self._lock = threading.Lock()
        self._current: tuple[bytes, bytes] | None = None
        self._handed: tuple[bytes, bytes] | None = None
        self.installed = 0
        """Certificates installed so far."""

    def install(self, key_pem: bytes, chain_pem: bytes) -> None:
        """Serve new handshakes with ``chain_pem`` (leaf first) and ``key_pem``."""
        if b"PRIVATE KEY-----" not in key_pem or b"-----BEGIN CERTIFICATE-----" not in chain_pem:
            raise ValueError("expected a PEM private key and a PEM certificate chain")
        with self._lock:
            self._current = (key_pem, chain_pem)
            self.installed += 1

    @property
    def ready(self) -> bool:
        """Whether a certificate has been installed."""
        return self._current is not None

    def _configuration(self, pair: tuple[bytes, bytes]) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [pair], root_certificates=self.trust_anchors_pem
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC (on its own threads) before each handshake: None keeps the last one.
        with self._lock:
            current = self._current
            if current is None or current is self._handed:
                return None
            self._handed = current
        return self._configuration(current)

    def credentials(self) -> grpc.ServerCredentials:
        """Dynamic server credentials following ``install``; ``RuntimeError`` before the first."""
        with self._lock:
            current = self._current
            if current is None:
                raise RuntimeError("no serving certificate installed yet")
            self._handed = current
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(current),
            # gRPC documents ``None`` as "keep the current one"; its stubs say otherwise.
            cast("Callable[[], grpc.ServerCertificateConfiguration]", self._fetch),
            require_client_authentication=self.require_client_auth,
        )
