"""Tapping proxies from the CLI: a tap identity, mTLS to each pod's tap port, JSON lines back.

Rules:
- Proxies serve tap (port 4190) only over mTLS to the identity their
  ``LINKERD2_PROXY_TAP_SVC_NAME`` names (viz's ``tap`` service account, SEC-2).
  The CLI holds that identity for the length of one command: it reads the
  cluster's issuer (Secret ``linkerd-identity-issuer``) and trust anchors
  (ConfigMap ``linkerd-identity-trust-roots``) with the kubeconfig's rights and
  signs a short-lived leaf in memory; the key is written only to a private
  temporary directory removed when the command ends. Whoever can read the issuer
  Secret can already mint any identity, so this grants nothing new.
- The tapped pod's own identity is checked as the TLS server name.
- Pods are reached at their IP, so the CLI must run where pod IPs are routable
  (inside the cluster network, or on the host of a flat ``netns`` topology).
- Each pod is tapped in its own thread; events are merged into one queue in
  arrival order. A pod that cannot be tapped is reported, the others go on.
"""

from __future__ import annotations

import base64
import json
import queue
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import h11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mesh.identity.certs import Credentials
from mesh.identity.issuing import Accepted, issue
from mesh.identity.names import parse
from mesh.identity.pem import PemFile, load_certificates, load_private_key
from mesh.install.controlplane import ISSUER_SECRET, TRUST_ROOTS_CONFIG_MAP
from mesh.viz.fetch import ClusterReader, PodInfo, ScrapeError
from mesh.viz.scrape import Workload

__all__ = ["TAP_PORT", "TapFilter", "TapSession", "TapStream"]

TAP_PORT = 4190
LEAF_LIFETIME = timedelta(hours=1)
"""How long the CLI's tap certificate is valid."""
CONNECT_TIMEOUT = 10.0
"""Seconds to connect to a pod's tap port and finish the TLS handshake."""
READ_TIMEOUT = 1.0
"""Seconds a read blocks before the stream checks whether it should stop."""


@dataclass(frozen=True)
class TapFilter:
    """What to tap: unset fields match anything (sent to the proxy as its query)."""

    direction: str | None = None
    authority: str | None = None
    path: str | None = None
    method: str | None = None

    def query(self) -> str:
        params = {k: v for k, v in vars(self).items() if v}
        return urlencode(params)


@dataclass(frozen=True)
class TapStream:
    """One event (or a failure, ``error`` set; or ``opened``) from the ``index``-th tapped pod."""

    index: int
    workload: Workload
    event: dict[str, Any] | None = None
    error: str | None = None
    opened: bool = False
    """The pod's proxy accepted the tap: events from now on are streamed."""


def _tap_identity(pod: Mapping[str, Any]) -> str | None:
    for container in pod.get("spec", {}).get("containers", []):
        for env in container.get("env", []) or []:
            if env.get("name") == "LINKERD2_PROXY_TAP_SVC_NAME" and env.get("value"):
                return str(env["value"]).split(",")[0].strip()
    return None


class TapSession:
    """A tap identity for one command, and the streams opened with it."""

    def __init__(self, reader: ClusterReader, control_plane_ns: str = "linkerd") -> None:
        self.reader = reader
        self.control_plane_ns = control_plane_ns
        self._dir = tempfile.TemporaryDirectory(prefix="isthmus-tap-")
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._issuer: Credentials | None = None
        self._anchors: Path | None = None
        self.stop = threading.Event()
        self.events: queue.Queue[TapStream] = queue.Queue()

    def close(self) -> None:
        self.stop.set()
        self._dir.cleanup()

    def __enter__(self) -> TapSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_issuer(self) -> Credentials:
        if self._issuer is None:
            secret = self.reader.get(
                f"/api/v1/namespaces/{self.control_plane_ns}/secrets/{ISSUER_SECRET}"
            )
            roots = self.reader.get(
                f"/api/v1/namespaces/{self.control_plane_ns}/configmaps/{TRUST_ROOTS_CONFIG_MAP}"
            )
            data = secret.get("data", {})
            cert = base64.b64decode(data.get("tls.crt", ""))
            key = base64.b64decode(data.get("tls.key", ""))
            first, *chain = load_certificates(PemFile(ISSUER_SECRET, cert))
            self._issuer = Credentials(
                first, load_private_key(PemFile(ISSUER_SECRET, key)), tuple(chain)
            )
            anchors = roots.get("data", {}).get("ca-bundle.crt", "")
            if not anchors:
                raise ScrapeError(f"ConfigMap {TRUST_ROOTS_CONFIG_MAP} has no ca-bundle.crt")
            self._anchors = Path(self._dir.name) / "anchors.pem"
            self._anchors.write_text(anchors)
        return self._issuer

    def context(self, identity: str) -> ssl.SSLContext:
        """A TLS client context holding a fresh leaf for ``identity``."""
        if identity in self._contexts:
            return self._contexts[identity]
        issuer = self._load_issuer()
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        leaf = issue(
            issuer, Accepted(parse(identity), csr), now=datetime.now(UTC), lifetime=LEAF_LIFETIME
        )
        base = Path(self._dir.name) / f"tap-{len(self._contexts)}"
        chain, key_file = base.with_suffix(".crt"), base.with_suffix(".key")
        chain.write_bytes(leaf.leaf_pem() + leaf.chain_pem())
        key_file.touch(mode=0o600)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(cafile=str(self._anchors))
        context.load_cert_chain(str(chain), str(key_file))
        self._contexts[identity] = context
        return context

    def start(
        self, pods: Sequence[tuple[PodInfo, Mapping[str, Any]]], what: TapFilter, limit: int | None
    ) -> list[threading.Thread]:
        """Tap every pod (with its raw object) in a thread of its own."""
        threads = []
        for index, (info, raw) in enumerate(pods):
            thread = threading.Thread(
                target=self._run, args=(index, info, raw, what, limit), daemon=True
            )
            thread.start()
            threads.append(thread)
        return threads

    def _run(
        self, index: int, info: PodInfo, raw: Mapping[str, Any], what: TapFilter, limit: int | None
    ) -> None:
        w = info.workload
        try:
            tapper = _tap_identity(raw)
            if not tapper or not w.identity:
                raise ScrapeError(
                    "its proxy serves no tap (no identity, or no tap identity allowed)"
                )
            self._stream(index, info, self.context(tapper), what, limit)
        except (OSError, ssl.SSLError, ScrapeError, ValueError, h11.ProtocolError) as e:
            self.events.put(TapStream(index, w, error=f"{w.namespace}/{w.name}: {e}"))

    def _stream(
        self, index: int, info: PodInfo, context: ssl.SSLContext, what: TapFilter, limit: int | None
    ) -> None:
        w = info.workload
        query = what.query()
        if limit:
            query = f"{query}&limit={limit}" if query else f"limit={limit}"
        raw = socket.create_connection((info.ip, TAP_PORT), timeout=CONNECT_TIMEOUT)
        with context.wrap_socket(raw, server_hostname=w.identity) as sock:
            sock.settimeout(READ_TIMEOUT)
            http = h11.Connection(h11.CLIENT)
            request = h11.Request(method="GET", target=f"/tap?{query}", headers=[("host", info.ip)])
            sock.sendall((http.send(request) or b"") + (http.send(h11.EndOfMessage()) or b""))
            pending = b""
            while not self.stop.is_set():
                event = http.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        continue
                    http.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Response):
                    if event.status_code != 200:
                        raise ScrapeError(f"tap answered HTTP {event.status_code}")
                    self.events.put(TapStream(index, w, opened=True))
                if isinstance(event, h11.Data):
                    pending += bytes(event.data)
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self.events.put(TapStream(index, w, json.loads(line)))
                if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    return
