"""The load generator of the proxy bench: vegeta, built from its Go module and cached.

Rules:
- One tool drives every configuration (direct, HAProxy, Isthmus), so figures
  compare. vegeta is built once with the Go toolchain into
  ``~/.cache/isthmus/vegeta/<version>/`` (like CoreDNS, see ``harness.upstream``).
- Closed loop: ``workers`` keep-alive connections, each sending its next
  request when the last one answered (``-rate=0``), for the maximum rate.
- Open loop: requests are sent on a fixed schedule whatever the answers, new
  connections opened as needed (up to ``MAX_WORKERS``), so a slow proxy shows
  as latency and failures rather than as fewer requests sent (no coordinated
  omission while workers last).
- Every result is read from vegeta's own per-request records (CSV): latency,
  status, error; a request counts as failed unless it got a 200.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.upstream import cache_root

__all__ = ["VEGETA_MODULE", "VEGETA_VERSION", "Attack", "Result", "attack", "vegeta"]

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
BUILD_TIMEOUT = 600.0
"""Seconds building vegeta may take (module download and compile)."""
REQUEST_TIMEOUT = "2s"
"""vegeta's per-request timeout: a request slower than this counts as failed."""
MAX_WORKERS = 1024
"""Most connections an open-loop attack may open to keep its schedule."""
ATTACK_GRACE = 30.0
"""Seconds an attack may run past its duration (draining requests in flight)."""


def vegeta() -> Path:
    """The vegeta binary, built into the cache first if it is not there."""
    target = cache_root() / "vegeta" / VEGETA_VERSION
    binary = target / "vegeta"
    if binary.is_file():
        return binary
    if shutil.which("go") is None:
        raise RuntimeError("`go` is not on PATH; it is needed to build vegeta for the bench")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = {
        **os.environ,
        "GOBIN": str(partial),
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod -buildvcs=false",
    }
    done = subprocess.run(
        ["go", "install", "-trimpath", "-ldflags", "-s -w", f"{VEGETA_MODULE}@{VEGETA_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 or not (partial / "vegeta").is_file():
        raise RuntimeError(f"building vegeta {VEGETA_VERSION} failed:\n{done.stderr[-4000:]}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return binary


@dataclass(frozen=True, slots=True)
class Attack:
    """One load: ``rate`` requests/s (open loop) or ``None`` (closed loop over ``workers``)."""

    port: int
    seconds: float
    rate: int | None = None
    workers: int = 1
    authority: str = "localhost"


@dataclass(frozen=True, slots=True)
class Result:
    """What one attack measured."""

    requests: int
    failed: int
    achieved_rps: float
    """Successful requests per second of the attack's span."""
    latencies_ms: list[float]
    """Of the successful requests, sorted."""
    errors: dict[str, int]
    """Failure reasons (status or error text) and their counts."""

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of successful latencies, nearest rank; None if none."""
        lat = self.latencies_ms
        if not lat:
            return None
        rank = min(len(lat) - 1, max(0, int(q * len(lat) + 0.5) - 1))
        return lat[rank]


def attack(spec: Attack) -> Result:
    """Run one vegeta attack against ``127.0.0.1:<port>`` and read its records."""
    binary = vegeta()
    with tempfile.TemporaryDirectory(prefix="isthmus-vegeta-") as tmp:
        targets = Path(tmp) / "targets"
        targets.write_text(f"GET http://127.0.0.1:{spec.port}/\nHost: {spec.authority}\n\n")
        out = Path(tmp) / "results.bin"
        argv = [
            str(binary),
            "attack",
            f"-targets={targets}",
            f"-duration={spec.seconds:g}s",
            f"-timeout={REQUEST_TIMEOUT}",
            "-keepalive=true",
            f"-output={out}",
        ]
        if spec.rate is None:
            argv += ["-rate=0", f"-workers={spec.workers}", f"-max-workers={spec.workers}"]
        else:
            argv += [
                f"-rate={spec.rate}/1s",
                f"-workers={spec.workers}",
                f"-max-workers={MAX_WORKERS}",
            ]
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            timeout=spec.seconds + ATTACK_GRACE,
        )
        encoded = subprocess.run(
            [str(binary), "encode", "-to", "csv", str(out)],
            check=True,
            capture_output=True,
            text=True,
            timeout=ATTACK_GRACE,
        ).stdout
    return parse_csv(encoded)


def parse_csv(text: str) -> Result:
    """A ``Result`` from ``vegeta encode -to csv`` output (timestamp ns, code, latency ns, ...)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    first: int | None = None
    last = 0
    requests = 0
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 6:
            continue
        requests += 1
        started, code, latency = int(row[0]), int(row[1]), int(row[2])
        first = started if first is None else min(first, started)
        last = max(last, started + latency)
        if code == 200 and not row[5]:
            latencies.append(latency / 1e6)
        else:
            reason = row[5] or f"status {code}"
            errors[reason] = errors.get(reason, 0) + 1
    span = (last - first) / 1e9 if first is not None and last > first else 0.0
    latencies.sort()
    return Result(
        requests=requests,
        failed=requests - len(latencies),
        achieved_rps=len(latencies) / span if span else 0.0,
        latencies_ms=latencies,
        errors=errors,
    )
