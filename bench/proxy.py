"""``python -m bench.proxy``: the proxy pair beside HAProxy and no proxy, in one run.

    vegeta -> [outbound proxy -> mTLS -> inbound proxy] -> nginx      (all on 127.0.0.1)

For each configuration (``direct``, ``haproxy``, ``isthmus``; see ``bench.pairs``)
and each pass: closed loop at 1 and 16 connections (maximum rate), then open
loop at fixed rates (100, 500, 1000, 2000, 4000 rps by default). Each figure:
achieved rps, p50/p99/p99.9 latency, failed requests; for the proxies, the
CPU seconds both used during the 16-connection run (requests per CPU-second)
and their RSS idle and after the load. Several passes, printed as medians with
[min-max] ranges; the load average is printed with the run because the
machines are shared and noisy. ``--json`` prints, as the last line, one object:
``{"configs": {"direct": C, "haproxy": C, "isthmus": C}}`` with each C holding
``requests_per_cpu_second``, ``max_rps_16`` and ``rates`` (``{"2000": {"p50_ms",
"p99_ms", "p999_ms", "achieved_rps", "failed"}}``), medians over passes.

    python -m bench.proxy [--passes 3] [--seconds 3] [--configs direct,haproxy,isthmus]
                          [--rates 100,500,1000,2000,4000] [--json]
    python -m bench.proxy profile [--seconds 10] [--top 25]   where our proxies spend time
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import pairs
from bench.loadgen import Attack, Result, attack

__all__ = ["main"]

WARMUP_SECONDS = 0.5
"""Closed-loop load before measuring (connections, handshakes, pools)."""

TARGETS = {
    "requests_per_cpu_second": 8000.0,
    "share_of_haproxy": 0.40,
    "p50_ms_at_2000": 1.0,
    "p99_ms_over_haproxy_at_500": 2.0,
    "rss_idle_mib": 30.0,
}


# --- measuring ----------------------------------------------------------------------------


def _figures(result: Result) -> dict[str, float | None]:
    return {
        "achieved_rps": result.achieved_rps,
        "p50_ms": result.percentile(0.50),
        "p99_ms": result.percentile(0.99),
        "p999_ms": result.percentile(0.999),
        "failed": float(result.failed),
    }


def _measure(running: pairs.Running, seconds: float, rates: list[int]) -> dict[str, Any]:
    """One pass over one configuration."""
    port, pids = running.port, running.proxies
    rss_idle = sum(pairs.rss_mib(p) for p in pids) / len(pids) if pids else None
    attack(Attack(port, WARMUP_SECONDS, workers=16, authority=pairs.AUTHORITY))
    one = attack(Attack(port, seconds, workers=1, authority=pairs.AUTHORITY))
    cpu_before = sum(pairs.cpu_seconds(p) for p in pids)
    sixteen = attack(Attack(port, seconds, workers=16, authority=pairs.AUTHORITY))
    cpu = sum(pairs.cpu_seconds(p) for p in pids) - cpu_before
    ok16 = sixteen.requests - sixteen.failed
    figures: dict[str, Any] = {
        "max_rps_1": one.achieved_rps,
        "max_rps_16": sixteen.achieved_rps,
        "closed_16": _figures(sixteen),
        "cpu_seconds_16": cpu if pids else None,
        "requests_per_cpu_second": ok16 / cpu if pids and cpu > 0 else None,
        "rates": {},
    }
    for rate in rates:
        result = attack(Attack(port, seconds, rate=rate, workers=16, authority=pairs.AUTHORITY))
        figures["rates"][str(rate)] = _figures(result)
        if result.errors:
            figures["rates"][str(rate)]["errors"] = dict(
                sorted(result.errors.items(), key=lambda kv: -kv[1])[:3]
            )
    figures["rss_idle_mib"] = rss_idle
    figures["rss_loaded_mib"] = sum(pairs.rss_mib(p) for p in pids) / len(pids) if pids else None
    return figures


def _median(values: list[Any]) -> dict[str, float | None]:
    nums = [float(v) for v in values if v is not None]
    if not nums:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(nums), "min": min(nums), "max": max(nums)}


def _aggregate(passes: list[dict[str, Any]], rates: list[int]) -> dict[str, Any]:
    """Medians (and ranges) over passes, in the JSON shape of the module docstring."""
    keys = ("max_rps_1", "max_rps_16", "requests_per_cpu_second", "rss_idle_mib", "rss_loaded_mib")
    out: dict[str, Any] = {}
    ranges: dict[str, Any] = {}
    for key in keys:
        m = _median([p[key] for p in passes])
        out[key], ranges[key] = m["median"], m
    out["rates"] = {}
    for rate in rates:
        per: dict[str, Any] = {}
        for field in ("p50_ms", "p99_ms", "p999_ms", "achieved_rps", "failed"):
            m = _median([p["rates"][str(rate)][field] for p in passes])
            per[field] = m["median"]
            ranges[f"{rate}.{field}"] = m
        errors: dict[str, int] = {}
        for p in passes:
            for reason, n in p["rates"][str(rate)].get("errors", {}).items():
                errors[reason] = errors.get(reason, 0) + n
        if errors:
            per["errors"] = errors
        out["rates"][str(rate)] = per
    out["ranges"] = ranges
    out["passes"] = len(passes)
    return out


# --- printing -----------------------------------------------------------------------------


def _fmt(m: dict[str, float | None], digits: int = 0) -> str:
    if m["median"] is None:
        return "-"
    lo, hi = m["min"], m["max"]
    return f"{m['median']:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def _print_table(results: dict[str, Any], rates: list[int]) -> None:
    print()
    print(
        f"{'config':<9} {'max rps 1 conn':>22} {'max rps 16 conns':>24} "
        f"{'req per proxy-pair CPU-s':>26} {'RSS/proxy idle':>16} {'RSS loaded':>16}"
    )
    for name, c in results.items():
        r = c["ranges"]
        print(
            f"{name:<9} {_fmt(r['max_rps_1']):>22} {_fmt(r['max_rps_16']):>24} "
            f"{_fmt(r['requests_per_cpu_second']):>26} {_fmt(r['rss_idle_mib'], 1):>16} "
            f"{_fmt(r['rss_loaded_mib'], 1):>16}"
        )
    print()
    print(
        f"{'open loop':<9} {'rate':>6} {'achieved rps':>20} {'p50 ms':>20} "
        f"{'p99 ms':>20} {'p99.9 ms':>20} {'failed':>14}"
    )
    for name, c in results.items():
        r = c["ranges"]
        for rate in rates:
            print(
                f"{name:<9} {rate:>6} {_fmt(r[f'{rate}.achieved_rps']):>20} "
                f"{_fmt(r[f'{rate}.p50_ms'], 2):>20} {_fmt(r[f'{rate}.p99_ms'], 2):>20} "
                f"{_fmt(r[f'{rate}.p999_ms'], 2):>20} {_fmt(r[f'{rate}.failed']):>14}"
            )
            errors = c["rates"][str(rate)].get("errors")
            if errors:
                print(f"{'':<16} failures: {errors}")


def _verdicts(results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """Each target of issue 12: (what, met or None when not measurable, the figures)."""
    ours, theirs = results.get("isthmus"), results.get("haproxy")
    if ours is None:
        return []
    out: list[tuple[str, bool | None, str]] = []

    def check(what: str, value: float | None, ok: Callable[[float], bool], seen: str) -> None:
        out.append((what, None if value is None else ok(value), seen))

    eff = ours["requests_per_cpu_second"]
    check(
        f">= {TARGETS['requests_per_cpu_second']:.0f} requests per proxy-pair CPU-second",
        eff,
        lambda v: v >= TARGETS["requests_per_cpu_second"],
        f"{eff or 0:.0f}",
    )
    if theirs is not None:
        share = TARGETS["share_of_haproxy"]
        h_eff, h_max, o_max = (
            theirs["requests_per_cpu_second"],
            theirs["max_rps_16"],
            ours["max_rps_16"],
        )
        check(
            f">= {share:.0%} of HAProxy's requests per CPU-second",
            eff / h_eff if eff and h_eff else None,
            lambda v: v >= share,
            f"{eff or 0:.0f} vs {h_eff or 0:.0f}",
        )
        check(
            f"max rps at 16 connections >= {share:.0%} of HAProxy's",
            o_max / h_max if o_max and h_max else None,
            lambda v: v >= share,
            f"{o_max or 0:.0f} vs {h_max or 0:.0f}",
        )
        o500, h500 = ours["rates"].get("500"), theirs["rates"].get("500")
        if o500 and h500 and o500["p99_ms"] is not None and h500["p99_ms"] is not None:
            over = TARGETS["p99_ms_over_haproxy_at_500"]
            check(
                f"p99 at 500 rps <= HAProxy's + {over:g} ms",
                o500["p99_ms"] - h500["p99_ms"],
                lambda v: v <= over,
                f"{o500['p99_ms']:.2f} ms vs {h500['p99_ms']:.2f} ms",
            )
    o2000 = ours["rates"].get("2000")
    if o2000:
        p50 = o2000["p50_ms"]
        ok = o2000["failed"] == 0 and p50 is not None and p50 <= TARGETS["p50_ms_at_2000"]
        out.append(
            (
                "open loop 2000 rps: 0 failed, p50 <= 1 ms",
                ok,
                f"failed {o2000['failed']:.0f}, p50 {p50 or float('nan'):.2f} ms,"
                f" achieved {o2000['achieved_rps']:.0f} rps",
            )
        )
    rss = ours["rss_idle_mib"]
    check(
        f"RSS per proxy idle <= {TARGETS['rss_idle_mib']:g} MiB",
        rss,
        lambda v: v <= TARGETS["rss_idle_mib"],
        f"{rss or 0:.1f} MiB",
    )
    return out


def proxy_mode() -> str:
    """How our proxy parts run: ``compiled`` (mypyc, see ``mesh.proxy.compiled``) or ``python``."""
    done = subprocess.run(
        [sys.executable, "-c", "import mesh.proxy.compiled as c; print(c.mode())"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return done.stdout.strip()


def run(passes: int, seconds: float, configs: list[str], rates: list[int], as_json: bool) -> None:
    load_before = os.getloadavg()
    mode = proxy_mode()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
        f"{passes} passes, {seconds:g}s per figure; isthmus hot path: {mode}",
        flush=True,
    )
    per_config: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-") as tmp:
        work = Path(tmp)
        pairs.write_certs(work)
        with pairs.nginx(work) as app_port:
            for n in range(1, passes + 1):
                for name in configs:
                    started = time.monotonic()
                    with pairs.start(name, work, work, app_port) as running:
                        figures = _measure(running, seconds, rates)
                    per_config[name].append(figures)
                    p50 = figures["rates"].get("2000", {}).get("p50_ms")
                    p50_text = "-" if p50 is None else f"{p50:.2f}"
                    print(
                        f"pass {n} {name:<8} max rps 16 conns {figures['max_rps_16']:8.0f}, "
                        f"2000 rps p50 {p50_text} ms "
                        f"({time.monotonic() - started:.0f}s, load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
    results = {name: _aggregate(p, rates) for name, p in per_config.items()}
    _print_table(results, rates)
    print()
    for what, met, seen in _verdicts(results):
        verdict = "not measured" if met is None else ("met" if met else "NOT MET")
        print(f"  {verdict:<12} {what}: {seen}")
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if as_json:
        document = {
            "configs": results,
            "isthmus_hot_path": mode,
            "load_average": {"before": list(load_before), "after": list(load_after)},
            "seconds": seconds,
        }
        print(json.dumps(document, separators=(",", ":")))


def profile(seconds: float, top: int) -> None:
    """Profile both Isthmus proxies (cProfile) under 16-connection load; print the top."""
    with tempfile.TemporaryDirectory(prefix="isthmus-profile-") as tmp:
        work = Path(tmp)
        pairs.write_certs(work)
        base = work / "isthmus"
        with pairs.nginx(work) as app_port:
            with pairs.isthmus_pair(work, app_port, profile=base) as (port, _):
                attack(Attack(port, WARMUP_SECONDS, workers=16, authority=pairs.AUTHORITY))
                result = attack(Attack(port, seconds, workers=16, authority=pairs.AUTHORITY))
            mode = proxy_mode()
            print(
                f"{result.requests} requests in {seconds:g}s under cProfile "
                f"({result.achieved_rps:.0f} rps, {result.failed} failed); hot path {mode}"
                + (
                    " (its functions are opaque to cProfile: ISTHMUS_PROXY_COMPILED=0 shows them)"
                    if mode == "compiled"
                    else ""
                )
            )
            for side in ("outbound", "inbound"):
                path = base.with_suffix(f".{side}.prof")
                text = io.StringIO()
                stats = pstats.Stats(str(path), stream=text)
                stats.strip_dirs().sort_stats("tottime").print_stats(top)
                print(f"\n=== {side} proxy: top {top} functions by own time ===")
                print(text.getvalue().split("\n", 4)[-1].rstrip())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["part"]:  # one proxy of the pair: see bench.proxy_part
        from bench import proxy_part

        proxy_part.main(argv[1:])
        return
    if argv[:1] == ["profile"]:
        prof = argparse.ArgumentParser(prog="python -m bench.proxy profile")
        prof.add_argument("--seconds", type=float, default=10.0)
        prof.add_argument("--top", type=int, default=25)
        args = prof.parse_args(argv[1:])
        profile(args.seconds, args.top)
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure")
    parser.add_argument("--configs", default=",".join(pairs.CONFIGS))
    parser.add_argument("--rates", default="100,500,1000,2000,4000")
    parser.add_argument("--json", action="store_true", help="a JSON object as the last line")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in pairs.CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {', '.join(pairs.CONFIGS)}")
    if args.passes < 1 or args.seconds <= 0:
        parser.error("--passes must be >= 1 and --seconds > 0")
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    run(args.passes, args.seconds, configs, rates, args.json)


if __name__ == "__main__":
    main()
