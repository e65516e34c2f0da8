"""``python -m bench``: print substrate figures.

  python -m bench substrate           warm bring-up and teardown of two-flat, idle memory
  python -m bench cold-build          build every upstream binary from scratch (slow, once)
  python -m bench fuzz                every fuzzer (SEC-6) for 10 minutes each, corpus kept
  python -m bench proxy [...]         the proxy pair beside HAProxy and no proxy (bench.proxy)
  python -m bench proxy profile       where the proxies spend their time under load
  python -m bench rss [...]           the proxy's idle RSS and what it is made of (bench.rss)

Targets (what we aim for on a 2-core, 24 GB machine; printed next to each figure):
  warm bring-up of two-flat  <= 60 s      teardown <= 15 s
  idle memory of one cluster <= 1.5 GiB   cold build <= 30 min
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import topology as topo
from harness.providers.netns import network
from harness.providers.netns.provider import STATE_ROOT, NetnsProvider
from harness.upstream import DEFAULT_VERSION, build

TARGETS = {"bring_up_s": 60, "teardown_s": 15, "idle_cluster_mib": 1536, "cold_build_s": 1800}


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _figure(name: str, value: float, unit: str) -> None:
    target = TARGETS.get(name)
    verdict = ""
    if target is not None:
        met = "met" if value <= target else "MISSED"
        verdict = f" (target <= {target:g}{unit}: {met})"
    print(f"{name:<20} {value:10.1f} {unit}{verdict}", flush=True)


def substrate(topology: str, settle: float) -> None:
    t = topo.load(topology)
    provider = NetnsProvider(STATE_ROOT / "bench", progress=lambda m: None)
    started = time.monotonic()
    clusters = provider.up(t)
    _figure("bring_up_s", time.monotonic() - started, "s")
    try:
        time.sleep(settle)  # let the idle clusters settle before reading memory
        for c in clusters:
            spaces = [s for s in c.extra["node_netns"].split(",")]
            pids = {p for s in spaces for p in network.netns_pids(s)}
            logs = Path(c.extra["logs"])
            pids |= {int(p.read_text()) for p in logs.glob("*.pid")}
            mib = sum(_rss_kib(p) for p in pids) / 1024
            _figure("idle_cluster_mib", mib, "MiB")
            print(f"  ({c.name}: {len(pids)} processes)")
    finally:
        started = time.monotonic()
        provider.down()
        _figure("teardown_s", time.monotonic() - started, "s")


def cold_build(version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="isthmus-cold-") as tmp:
        env = {**os.environ, "ISTHMUS_CACHE": f"{tmp}/cache", "GOCACHE": f"{tmp}/gocache"}
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", f"from harness.upstream import build; build({version!r})"],
            env=env,
            check=True,
        )
        _figure("cold_build_s", time.monotonic() - started, "s")


def main() -> None:
    if sys.argv[1:2] == ["proxy"]:
        from bench import proxy

        proxy.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["rss"]:
        from bench import rss

        rss.main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("substrate", help="warm bring-up/teardown and idle memory")
    s.add_argument("--topology", default="two-flat")
    s.add_argument("--settle", type=float, default=20, help="seconds idle before measuring")
    c = sub.add_parser("cold-build", help="build upstream binaries with empty caches")
    c.add_argument("--k8s-version", default=DEFAULT_VERSION)
    f = sub.add_parser("fuzz", help="a long run of every fuzzer (python -m fuzz)")
    f.add_argument("--seconds", type=int, default=600, help="per target")
    f.add_argument("--corpus", type=Path, default=Path("reports/fuzz-corpus"))
    args = parser.parse_args()
    if args.cmd == "fuzz":
        argv = [sys.executable, "-m", "fuzz", "all", "--seconds", str(args.seconds)]
        argv += ["--corpus", str(args.corpus), "--artifacts", "reports/fuzz"]
        raise SystemExit(subprocess.run(argv, check=False).returncode)
    if args.cmd == "substrate":
        build(progress=lambda m: None)
        substrate(args.topology, args.settle)
    else:
        cold_build(args.k8s_version)


if __name__ == "__main__":
    main()
