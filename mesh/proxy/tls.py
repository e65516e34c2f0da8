"""mTLS between proxies: contexts from the workload certificate and a sans-I/O TLS session.

Rules:
- TLS 1.3 only. The trust anchors are the only roots; system CAs are never used.
- A server context (inbound) asks for a client certificate and verifies it when
  presented; a client without one is plaintext-equivalent for policy. A client
  context (outbound) requires the server's certificate to chain to the anchors
  *and* to name exactly the identity discovery promised, which is also the SNI.
- A peer's identity is the single DNS SAN of its verified leaf; a leaf with
  none or several is refused. The chain OpenSSL verified is checked again
  with ``mesh.identity.verify_peer`` (leaf not a CA, one identity, chained to
  the anchors now): Python 3.13+ exposes it as ``SSLObject.get_verified_chain``
  (DER bytes), 3.10-3.12 on the object underneath (``_ssl`` certificates);
  ``verified_chain`` reads either, so the re-check runs on every version the
  project supports, and a handshake fails if the chain cannot be read at all.
- ``TlsStore`` holds the current contexts; ``update`` builds new ones and swaps
  them in with a single assignment, so connections already established keep
  theirs and new ones use the new certificate (rotation without drops). A
  store may start ``pending`` (identity known, no certificate yet).
- ``TlsSession`` wraps ``ssl.SSLObject`` over memory BIOs: ciphertext in,
  plaintext out, and the other way, with no sockets. Bytes already read (during
  protocol detection) are simply fed first.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from mesh.identity.trust import ChainError, verify_peer

__all__ = [
    "HandshakeError",
    "TlsCredentials",
    "TlsSession",
    "TlsStore",
    "client_context",
    "peer_identity",
    "server_context",
    "verified_chain",
]


class HandshakeError(ConnectionError):
    """The TLS handshake failed or the peer is not who it must be."""


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    """The proxy's workload identity: its name, certificate chain and key, and the anchors."""

    identity: str
    certificate_chain_pem: bytes
    """The leaf first, then the issuer (and any further intermediates)."""
    key_pem: bytes
    trust_anchors_pem: bytes


_Contexts = tuple[TlsCredentials, ssl.SSLContext, ssl.SSLContext, list[x509.Certificate]]
"""A store's state: credentials, server and client contexts, parsed anchors."""


def _memory_file(data: bytes) -> tuple[str, int | None]:
    """A path holding ``data`` for OpenSSL to read: a memfd where there is one."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("isthmus-tls", 0)
        os.write(fd, data)
        return f"/proc/self/fd/{fd}", fd
    handle, path = tempfile.mkstemp(prefix="isthmus-tls-")
    try:
        os.write(handle, data)
    finally:
        os.close(handle)
    return path, None


def _load_chain(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    cert_path, cert_fd = _memory_file(chain_pem)
    key_path, key_fd = _memory_file(key_pem)
    try:
        context.load_cert_chain(cert_path, key_path)
    finally:
        for path, fd in ((cert_path, cert_fd), (key_path, key_fd)):
            if fd is not None:
                os.close(fd)
            else:
                os.unlink(path)


def _context(purpose: int, credentials: TlsCredentials) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    context.load_verify_locations(cadata=credentials.trust_anchors_pem.decode("ascii"))
    _load_chain(context, credentials.certificate_chain_pem, credentials.key_pem)
    return context


def server_context(credentials: TlsCredentials) -> ssl.SSLContext:
    """A context terminating mTLS: our certificate, client certificates verified if sent."""
    context = _context(ssl.PROTOCOL_TLS_SERVER, credentials)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.num_tickets = 0
    return context


def client_context(credentials: TlsCredentials) -> ssl.SSLContext:
    """A context originating mTLS: our client certificate, the server's verified."""
    context = _context(ssl.PROTOCOL_TLS_CLIENT, credentials)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context


def verified_chain(tls: ssl.SSLObject) -> list[x509.Certificate]:
    """The peer's chain as OpenSSL verified it, leaf first (see the module docstring).

    Raises ``HandshakeError`` when this Python exposes no verified chain.
    """
    public = getattr(tls, "get_verified_chain", None)  # 3.13+: DER bytes
    if public is not None:
        return [x509.load_der_x509_certificate(bytes(der)) for der in public()]
    private = getattr(getattr(tls, "_sslobj", None), "get_verified_chain", None)  # 3.10-3.12
    if private is None:
        raise HandshakeError("this Python exposes no verified certificate chain")
    der_encoding = getattr(ssl, "_ssl").ENCODING_DER  # noqa: B009 (a private module)
    return [
        x509.load_der_x509_certificate(cert.public_bytes(der_encoding)) for cert in private() or []
    ]


def peer_identity(tls: ssl.SSLObject, anchors: list[x509.Certificate] | None = None) -> str | None:
    """The verified peer's identity (its single DNS SAN), or ``None`` if it sent no certificate.

    Raises ``HandshakeError`` for a certificate naming no or several DNS identities.
    """
    cert = tls.getpeercert()
    if not cert:
        return None
    sans = cert.get("subjectAltName", ())
    names = [entry[1] for entry in sans if isinstance(entry, tuple) and entry[0] == "DNS"]
    if len(names) != 1 or not isinstance(names[0], str):
        raise HandshakeError(f"peer certificate has {len(names)} DNS SANs; expected exactly one")
    if anchors:
        chain = verified_chain(tls)
        try:
            verify_peer(chain, anchors, now=datetime.now(UTC))
        except ChainError as e:
            raise HandshakeError(str(e)) from e
    return names[0]


class TlsStore:
    """The current server and client contexts; replaced atomically on rotation.

    A store made with ``pending`` knows its identity and anchors but has no
    certificate yet (``ready`` is False, and asking for a context raises
    ``HandshakeError``) until the first ``update``.
    """

    def __init__(self, credentials: TlsCredentials) -> None:
        self._identity = credentials.identity
        self._current: _Contexts | None = None
        self._anchors = x509.load_pem_x509_certificates(credentials.trust_anchors_pem)
        self.update(credentials)

    @classmethod
    def pending(cls, identity: str, trust_anchors_pem: bytes) -> TlsStore:
        """A store for ``identity`` still waiting for its first certificate."""
        store = cls.__new__(cls)
        store._identity = identity
        store._current = None
        store._anchors = x509.load_pem_x509_certificates(trust_anchors_pem)
        return store

    @staticmethod
    def _build(credentials: TlsCredentials) -> _Contexts:
        anchors = x509.load_pem_x509_certificates(credentials.trust_anchors_pem)
        return (credentials, server_context(credentials), client_context(credentials), anchors)

    def update(self, credentials: TlsCredentials) -> None:
        """Use ``credentials`` for new connections from now on (same identity only)."""
        if credentials.identity != self._identity:
            raise ValueError(
                f"credentials for {credentials.identity!r} in the store of {self._identity!r}"
            )
        self._current = self._build(credentials)

    def _contexts(self) -> _Contexts:
        current = self._current
        if current is None:
            raise HandshakeError(f"no certificate for {self._identity} yet")
        return current

    @property
    def ready(self) -> bool:
        """Whether a certificate has been installed."""
        return self._current is not None

    @property
    def identity(self) -> str:
        """The local proxy's identity."""
        return self._identity

    @property
    def credentials(self) -> TlsCredentials:
        """The certificate and key in use."""
        return self._contexts()[0]

    @property
    def server(self) -> ssl.SSLContext:
        """The context for terminating inbound mTLS."""
        return self._contexts()[1]

    @property
    def client(self) -> ssl.SSLContext:
        """The context for originating outbound mTLS."""
        return self._contexts()[2]

    @property
    def anchors(self) -> list[x509.Certificate]:
        """The parsed trust anchors."""
        current = self._current
        return current[3] if current is not None else self._anchors


class TlsSession:
    """One TLS connection's state, over memory buffers (sans I/O)."""

    __slots__ = ("_in", "_obj", "_out", "expected_identity", "peer")

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self.expected_identity = server_hostname
        self.peer: str | None = None
        """The peer's verified identity, once the handshake is done."""

    def feed(self, data: bytes) -> None:
        """Ciphertext received (``b""``: the peer closed its side)."""
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()

    def outgoing(self) -> bytes:
        """Ciphertext to send now (possibly empty)."""
        return self._out.read()

    def handshake(self, anchors: list[x509.Certificate] | None = None) -> bool:
        """Advance the handshake; True once done. Raises ``HandshakeError`` on failure."""
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            if self._in.eof:
                raise HandshakeError(
                    "the peer closed the connection during the handshake"
                ) from None
            return False
        except (ssl.SSLError, ValueError) as e:
            raise HandshakeError(f"TLS handshake failed: {e}") from e
        self.peer = peer_identity(self._obj, anchors)
        expected = self.expected_identity
        if expected is not None and self.peer != expected:
            raise HandshakeError(f"the server presented {self.peer!r}, not {expected!r}")
        return True

    def read(self) -> tuple[bytes, bool]:
        """Plaintext available so far, and whether the peer has finished sending."""
        obj = self._obj
        chunks: list[bytes] = []
        while True:
            try:
                chunk = obj.read(65536)
            except ssl.SSLWantReadError:
                return b"".join(chunks), False
            except ssl.SSLZeroReturnError:
                return b"".join(chunks), True
            except ssl.SSLError as e:
                raise ConnectionResetError(f"TLS error: {e}") from e
            if not chunk:
                return b"".join(chunks), True
            if not chunks and not self._in.pending and not obj.pending():
                return chunk, False  # the usual case: one record, nothing more buffered
            chunks.append(chunk)

    def write(self, data: bytes) -> bytes:
        """Encrypt ``data``; returns the ciphertext to send."""
        try:
            written = self._obj.write(data)
            if written < len(data):
                view = memoryview(data)[written:]
                while view:
                    written = self._obj.write(view)
                    view = view[written:]
        except ssl.SSLError as e:
            raise ConnectionResetError(f"TLS error: {e}") from e
        return self._out.read()
