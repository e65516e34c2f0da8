"""The configurations the proxy bench compares, each a process tree on loopback.

    load -> [outbound proxy -> mTLS -> inbound proxy] -> nginx

- ``direct``: the load talks to nginx itself (the ceiling of load and backend).
- ``haproxy``: Debian's HAProxy as both proxies, one thread each, HTTP mode
  with keep-alive and connection reuse, the hop in TLS 1.3 with client
  certificates: the outbound side verifies the server's certificate against
  the anchors and its DNS SAN against the expected identity, as ours does.
- ``isthmus``: our proxy pair (``mesh.proxy.server.Proxy``) with static
  discovery and policy, the same certificates and the same hop.
Every part listens on an ephemeral port and must answer within ``READY_TIMEOUT``.
A ``Running`` configuration says where the load goes and which processes are
the proxies (for CPU seconds and RSS, read from ``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "AUTHORITY",
    "CONFIGS",
    "Running",
    "cpu_seconds",
    "identity",
    "rss_mib",
    "start",
    "write_certs",
]

TRUST_DOMAIN = "cluster.local"
AUTHORITY = "bb.demo.svc.cluster.local:8080"
CONFIGS = ("direct", "haproxy", "isthmus")
READY_TIMEOUT = 30.0
"""Seconds a part may take to accept connections."""
READY_POLL = 0.05
"""Seconds between connection attempts while a part starts."""
STOP_TIMEOUT = 10.0
"""Seconds a part may take to exit after SIGTERM before it is killed."""
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def identity(sa: str) -> str:
    """The workload identity of service account ``sa`` in the bench's namespace."""
    return f"{sa}.demo.serviceaccount.identity.linkerd.{TRUST_DOMAIN}"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_certs(directory: Path) -> None:
    """Anchors, and for ``web`` and ``bb`` a chain, a key and HAProxy's combined PEM."""
    # Imported here: each proxy part imports this module for ``identity`` only.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from mesh.identity import Accepted, create_anchor, create_issuer, issue, parse

    now = datetime.now(UTC)
    anchor = create_anchor(TRUST_DOMAIN, now=now)
    issuer = create_issuer(anchor, TRUST_DOMAIN, now=now)
    (directory / "anchors.pem").write_bytes(anchor.certificate_pem())
    for sa in ("web", "bb"):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity(sa))]), False)
            .sign(key, hashes.SHA256())
        )
        issued = issue(issuer, Accepted(parse(identity(sa)), csr), now=now)
        chain = issued.leaf_pem() + issued.chain_pem()
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (directory / f"{sa}.crt").write_bytes(chain)
        (directory / f"{sa}.key").write_bytes(key_pem)
        (directory / f"{sa}.pem").write_bytes(chain + key_pem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(READY_POLL)
    raise RuntimeError(f"{what} did not listen on {port} within {READY_TIMEOUT:g}s")


@contextlib.contextmanager
def _process(argv: list[str], what: str, **kwargs: object) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(argv, text=True, **kwargs)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def nginx(work: Path) -> Iterator[int]:
    """nginx answering every request with 200 ``ok``, one worker; yields its port."""
    port = _free_port()
    conf = work / "nginx.conf"
    temp = work / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf.write_text(
        f"daemon off; master_process off; worker_processes 1;\n"
        f"pid {work}/nginx.pid; error_log {work}/nginx-error.log warn;\n"
        "events { worker_connections 8192; }\n"
        "http {\n"
        f"  access_log off; client_body_temp_path {temp}; proxy_temp_path {temp};\n"
        f"  fastcgi_temp_path {temp}; uwsgi_temp_path {temp}; scgi_temp_path {temp};\n"
        "  keepalive_requests 10000000; keepalive_timeout 300s;\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }}\n"
        "}\n"
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    with _process([binary, "-c", str(conf), "-e", str(work / "nginx-error.log")], "nginx") as p:
        _wait_listening(port, p, "nginx")
        yield port


def _ensure_haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")  # the package must not start a service on the host
    made = not policy.exists()
    if made:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], env=env, check=True)
    finally:
        if made:
            policy.unlink()
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


_HAPROXY_COMMON = """global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  http-reuse always
"""


@contextlib.contextmanager
def haproxy_pair(work: Path, certs: Path, app_port: int) -> Iterator[tuple[int, list[int]]]:
    """Two HAProxy processes (outbound, inbound); yields the outbound port and both pids."""
    binary = _ensure_haproxy()
    inbound, outbound = _free_port(), _free_port()
    bb, anchors = identity("bb"), certs / "anchors.pem"
    (work / "haproxy-in.cfg").write_text(
        _HAPROXY_COMMON + f"frontend inbound\n"
        f"  bind 127.0.0.1:{inbound} ssl crt {certs / 'bb.pem'} ca-file {anchors}"
        " verify optional ssl-min-ver TLSv1.3 alpn http/1.1\n"
        "  http-request del-header l5d-client-id\n"
        "  default_backend app\n"
        f"backend app\n  server app 127.0.0.1:{app_port}\n"
    )
    (work / "haproxy-out.cfg").write_text(
        _HAPROXY_COMMON + f"frontend outbound\n  bind 127.0.0.1:{outbound}\n"
        "  default_backend bb\n"
        f"backend bb\n  server bb 127.0.0.1:{inbound} ssl crt {certs / 'web.pem'}"
        f" ca-file {anchors} verify required sni str({bb}) verifyhost {bb}"
        " ssl-min-ver TLSv1.3 alpn http/1.1\n"
    )
    with (
        _process([binary, "-db", "-f", str(work / "haproxy-in.cfg")], "haproxy") as pin,
        _process([binary, "-db", "-f", str(work / "haproxy-out.cfg")], "haproxy") as pout,
    ):
        _wait_listening(inbound, pin, "haproxy (inbound)")
        _wait_listening(outbound, pout, "haproxy (outbound)")
        yield outbound, [pout.pid, pin.pid]


@contextlib.contextmanager
def _isthmus_part(
    role: str, certs: Path, target: int, profile: Path | None
) -> Iterator[tuple[int, int]]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    argv = [sys.executable, "-m", "bench.proxy_part", role, str(target), "--certs", str(certs)]
    if profile is not None:
        argv += ["--profile", str(profile)]
    with _process(argv, f"isthmus {role}", stdout=subprocess.PIPE, env=env, cwd=root) as p:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"isthmus {role} proxy did not start: {line!r}")
        yield int(line.split()[1]), p.pid


@contextlib.contextmanager
def isthmus_pair(
    certs: Path, app_port: int, profile: Path | None = None
) -> Iterator[tuple[int, list[int]]]:
    """Our proxy pair; yields the outbound port and both pids (profiles written on exit)."""
    server_profile = profile.with_suffix(".inbound.prof") if profile else None
    client_profile = profile.with_suffix(".outbound.prof") if profile else None
    with (
        _isthmus_part("server", certs, app_port, server_profile) as (inbound, pin),
        _isthmus_part("client", certs, inbound, client_profile) as (outbound, pout),
    ):
        yield outbound, [pout, pin]


@dataclass(frozen=True, slots=True)
class Running:
    """A configuration serving: the load's port and the proxies' pids (none for direct)."""

    name: str
    port: int
    proxies: list[int]


@contextlib.contextmanager
def start(
    name: str, work: Path, certs: Path, app_port: int, profile: Path | None = None
) -> Iterator[Running]:
    """Start configuration ``name`` (one of ``CONFIGS``) in front of nginx on ``app_port``."""
    if name == "direct":
        yield Running(name, app_port, [])
    elif name == "haproxy":
        with haproxy_pair(work, certs, app_port) as (port, pids):
            yield Running(name, port, pids)
    elif name == "isthmus":
        with isthmus_pair(certs, app_port, profile) as (port, pids):
            yield Running(name, port, pids)
    else:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}")
