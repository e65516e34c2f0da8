"""``python -m bench.rss``: the proxy's resident memory, idle on loopback, and what it is made of.

Three proxy processes, each idle once ready, all on 127.0.0.1:
- the bench pair's outbound and inbound proxies (``bench.proxy_part``, started
  by ``bench.pairs.isthmus_pair`` exactly as ``python -m bench.proxy`` starts
  them: static discovery and policy, the mTLS hop's certificates). Their mean
  VmRSS is the figure issue 12 sets a target for (``TARGET_IDLE_MIB``);
- the sidecar as a pod runs it (``isthmus component proxy``, configured by
  ``LINKERD2_PROXY_*``; the CLI run by this interpreter), certified by a real
  identity service in this process (``mesh.identity.service``; the only
  stand-in is the token review), with no destination or policy service.
  Printed for comparison: it also loads gRPC.

For each: VmRSS, VmHWM (peak), RSS anonymous and file-backed (shared
libraries, whose pages other processes may share), PSS, private memory and
threads. Then the modules that add the most RSS while being imported
(``bench.importmem``, in a separate process per entry point), and one
``met``/``NOT MET`` line. ``--json`` adds one JSON object as the last line.

    python -m bench.rss [--settle 1] [--top 15] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import pairs
from mesh.identity import Credentials, IssuingPolicy, TokenReview, create_anchor, create_issuer
from mesh.identity.bootstrap import self_issued
from mesh.identity.channels import ServingCertificate
from mesh.identity.service import IdentityServer, IdentityServicer, ServerSettings

__all__ = ["Memory", "main", "memory"]

TARGET_IDLE_MIB = 30.0
"""Issue 12: RSS per proxy, idle on loopback (the bench pair's mean)."""
SETTLE_SECONDS = 1.0
"""Seconds a ready proxy idles before its memory is read."""
READY_TIMEOUT = 30.0
"""Seconds the sidecar may take to be certified and answer ``/ready`` with 200."""
READY_POLL = 0.1
"""Seconds between ``/ready`` probes."""
STOP_TIMEOUT = 10.0
"""Seconds the sidecar may take to exit after SIGTERM before it is killed."""
IMPORT_TIMEOUT = 60.0
"""Seconds an import profile may take."""

IMPORT_ENTRIES = {
    "bench pair part": ("bench.proxy_part", "uvloop"),
    "sidecar": ("mesh.cli", "mesh.install.components", "mesh.proxy.__main__", "uvloop"),
}
"""What each kind of proxy process imports (uvloop is imported when the loop starts)."""

IDENTITY_SVC_NAME = f"linkerd-identity.linkerd.serviceaccount.identity.linkerd.{pairs.TRUST_DOMAIN}"
SIDECAR_SA = "web"
_TOKEN = "bench-rss-token"
_ROOT = Path(__file__).resolve().parent.parent
SIDECAR_COMMAND = ("-c", "import sys; from mesh.cli import main; sys.exit(main())")
"""What the ``isthmus`` console script runs; argv follows (``component proxy``)."""


@dataclass(frozen=True, slots=True)
class Memory:
    """One process's memory, in KiB (from ``/proc/PID/status`` and ``smaps_rollup``)."""

    vm_rss: int
    vm_hwm: int
    rss_anon: int
    rss_file: int
    pss: int
    private: int
    threads: int


def memory(pid: int) -> Memory:
    """Read ``pid``'s memory now; ``OSError`` if it is gone."""
    status: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            status[key] = int(value.split()[0])
    rollup: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            rollup[key] = int(value.split()[0])
    return Memory(
        vm_rss=status["VmRSS"],
        vm_hwm=status["VmHWM"],
        rss_anon=status["RssAnon"],
        rss_file=status["RssFile"],
        pss=rollup.get("Pss", 0),
        private=rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0),
        threads=status["Threads"],
    )


# --- the bench pair -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_pair(certs: Path, settle: float) -> dict[str, Memory]:
    """The bench's proxy pair, idle (no application behind it: nothing connects)."""
    with pairs.isthmus_pair(certs, _free_port()) as (_, (outbound, inbound)):
        time.sleep(settle)  # idle on purpose: the figure is the idle footprint
        return {"bench pair outbound": memory(outbound), "bench pair inbound": memory(inbound)}


# --- the sidecar, certified by a local identity service ----------------------------------


class _OneTokenReviewer:
    """Stands in for the Kubernetes TokenReview: one token, one service account."""

    async def review(self, token: str, audience: str) -> TokenReview:
        if token != _TOKEN:
            return TokenReview(False)
        return TokenReview(True, f"system:serviceaccount:demo:{SIDECAR_SA}", (audience,))


@asynccontextmanager
async def _identity_service(work: Path) -> AsyncIterator[tuple[int, bytes]]:
    """A real identity service on loopback; yields its port and the trust anchors' PEM."""
    now = datetime.now(UTC)
    anchor = create_anchor(pairs.TRUST_DOMAIN, now=now)
    issuer = create_issuer(anchor, pairs.TRUST_DOMAIN, now=now)

    class Issuer:
        def current(self, now: datetime) -> Credentials:
            return issuer

    servicer = IdentityServicer(
        IssuingPolicy(trust_domain=pairs.TRUST_DOMAIN), Issuer(), _OneTokenReviewer()
    )
    server = IdentityServer(servicer, ServerSettings(shutdown_grace=0))
    anchors = anchor.certificate_pem()
    serving = ServingCertificate(anchors, require_client_auth=False)
    issued = self_issued(issuer, IDENTITY_SVC_NAME, now=now)
    serving.install(issued.key_pem, issued.chain_pem)
    port = await server.start("127.0.0.1:0", serving.credentials())
    try:
        yield port, anchors
    finally:
        await server.stop()


def sidecar_env(work: Path, identity_port: int, anchors: bytes) -> dict[str, str]:
    """The sidecar's environment: the injector's identity settings, loopback listeners."""
    (work / "token").write_text(_TOKEN + "\n")
    (work / "identity").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKERD2_PROXY_")}
    return env | {
        "PYTHONPATH": str(_ROOT),
        "LINKERD2_PROXY_LOG": "warn",
        "LINKERD2_PROXY_INBOUND_LISTEN_ADDR": f"127.0.0.1:{_free_port()}",
        "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR": f"127.0.0.1:{_free_port()}",
        "LINKERD2_PROXY_ADMIN_LISTEN_ADDR": f"127.0.0.1:{_free_port()}",
        "LINKERD2_PROXY_CONTROL_LISTEN_ADDR": f"127.0.0.1:{_free_port()}",
        "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY": "all-unauthenticated",
        "LINKERD2_PROXY_IDENTITY_LOCAL_NAME": pairs.identity(SIDECAR_SA),
        "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS": anchors.decode("ascii"),
        "LINKERD2_PROXY_IDENTITY_TOKEN_FILE": str(work / "token"),
        "LINKERD2_PROXY_IDENTITY_DIR": str(work / "identity"),
        "LINKERD2_PROXY_IDENTITY_SVC_ADDR": f"127.0.0.1:{identity_port}",
        "LINKERD2_PROXY_IDENTITY_SVC_NAME": IDENTITY_SVC_NAME,
    }


async def _ready(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        status = await reader.readline()
    except OSError:
        return False
    finally:
        writer.close()
    return status.split(b" ")[1:2] == [b"200"]


async def _sidecar(work: Path, settle: float) -> dict[str, Memory]:
    async with _identity_service(work) as (identity_port, anchors):
        env = sidecar_env(work, identity_port, anchors)
        admin = int(env["LINKERD2_PROXY_ADMIN_LISTEN_ADDR"].rsplit(":", 1)[1])
        log = work / "sidecar.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *SIDECAR_COMMAND,
                "component",
                "proxy",
                env=env,
                cwd=_ROOT,
                stderr=stderr,
            )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not await _ready(admin):
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the sidecar was not ready within {READY_TIMEOUT:g}s "
                        f"(exit {process.returncode}); its log:\n{log.read_text()[-2000:]}"
                    )
                await asyncio.sleep(READY_POLL)
            await asyncio.sleep(settle)  # idle on purpose: the figure is the idle footprint
            return {"sidecar (isthmus component proxy)": memory(process.pid)}
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    process.kill()
                    await process.wait()


# --- imports --------------------------------------------------------------------------------


def import_profile(modules: tuple[str, ...]) -> dict[str, Any]:
    """``bench.importmem`` over ``modules`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.importmem", *modules],
        capture_output=True,
        text=True,
        cwd=_ROOT,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
        timeout=IMPORT_TIMEOUT,
        check=True,
    )
    profile: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return profile


def _packages(modules: dict[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for name, kib in modules.items():
        top = name.split(".")[0]
        totals[top] = totals.get(top, 0) + kib
    return totals


def _print_imports(title: str, profile: dict[str, Any], top: int) -> None:
    modules: dict[str, int] = profile["modules"]
    print(
        f"\n{title}: imports add {profile['total_kib'] / 1024:.1f} MiB to an interpreter of "
        f"{profile['baseline_kib'] / 1024:.1f} MiB ({len(modules)} modules)"
    )
    by_package = sorted(_packages(modules).items(), key=lambda kv: -kv[1])[:top]
    by_module = sorted(modules.items(), key=lambda kv: -kv[1])[:top]
    print(f"  {'top packages':<34} {'MiB':>6}    {'top modules':<44} {'MiB':>6}")
    for i in range(max(len(by_package), len(by_module))):
        left = by_package[i] if i < len(by_package) else ("", 0)
        right = by_module[i] if i < len(by_module) else ("", 0)
        print(
            f"  {left[0]:<34} {left[1] / 1024:6.2f}    {right[0][:44]:<44} {right[1] / 1024:6.2f}"
        )


# --- the report -----------------------------------------------------------------------------


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def _print_processes(processes: dict[str, Memory]) -> None:
    print(
        f"{'process (idle, MiB)':<32} {'VmRSS':>6} {'VmHWM':>6} {'anon':>6} {'file':>6} "
        f"{'PSS':>6} {'private':>8} {'threads':>8}"
    )
    for name, m in processes.items():
        print(
            f"{name:<32} {_mib(m.vm_rss):>6} {_mib(m.vm_hwm):>6} {_mib(m.rss_anon):>6} "
            f"{_mib(m.rss_file):>6} {_mib(m.pss):>6} {_mib(m.private):>8} {m.threads:>8}"
        )


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="isthmus-rss-") as tmp:
        yield Path(tmp)


def run(settle: float, top: int, as_json: bool) -> bool:
    """Measure and print; True when the bench pair meets ``TARGET_IDLE_MIB``."""
    started = time.monotonic()
    with _workdir() as work:
        pairs.write_certs(work)
        processes = bench_pair(work, settle)
        processes |= asyncio.run(_sidecar(work, settle))
    _print_processes(processes)
    imports = {title: import_profile(modules) for title, modules in IMPORT_ENTRIES.items()}
    for title, profile in imports.items():
        _print_imports(f"{title} ({', '.join(IMPORT_ENTRIES[title])})", profile, top)
    pair = [m.vm_rss for name, m in processes.items() if name.startswith("bench pair")]
    mean_mib = sum(pair) / len(pair) / 1024
    met = mean_mib <= TARGET_IDLE_MIB
    print(
        f"\n  {'met' if met else 'NOT MET':<8} RSS per proxy idle (bench pair mean) "
        f"<= {TARGET_IDLE_MIB:g} MiB: {mean_mib:.1f} MiB "
        f"({time.monotonic() - started:.0f}s, load {os.getloadavg()[0]:.2f})"
    )
    if as_json:
        document = {
            "target_idle_mib": TARGET_IDLE_MIB,
            "bench_pair_mean_mib": round(mean_mib, 2),
            "met": met,
            "processes": {name: asdict(m) for name, m in processes.items()},
            "imports_total_kib": {title: p["total_kib"] for title, p in imports.items()},
        }
        print(json.dumps(document, separators=(",", ":")))
    return met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rss",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS, help="idle seconds")
    parser.add_argument("--top", type=int, default=15, help="modules and packages listed")
    parser.add_argument("--json", action="store_true", help="a JSON object as the last line")
    args = parser.parse_args(argv)
    if args.settle < 0 or args.top < 1:
        parser.error("--settle must be >= 0 and --top >= 1")
    run(args.settle, args.top, args.json)


if __name__ == "__main__":
    main()
