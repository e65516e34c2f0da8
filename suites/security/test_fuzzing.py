"""Security: the parsers of untrusted input survive their fuzzers (SEC-6).

Runs every fuzzer of ``fuzz/`` (atheris, coverage-guided) for a short while from
its seeds: the HTTP/1 session, protocol detection, the policy converters, the
link-secret kubeconfig parser and the gateway's transport header. Any crash fails
the test and leaves its input in the report directory (``fuzz/``). No cluster is
needed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.settings import TIMEOUTS

SECONDS = 5
"""Per fuzzer; ``./run bench fuzz`` runs them for ten minutes each."""
FUZZERS = ("http1", "detect", "policy", "kubeconfig", "transport_header")
"""Every fuzzer must report: one silently dropped from ``fuzz all`` fails the test."""


@pytest.mark.conformance(
    short_name="sec-fuzzing",
    description=f"Coverage-guided fuzzers of the HTTP/1 session, protocol detection, the "
    f"policy converters, link-secret kubeconfig parsing and the gateway's transport "
    f"header run {SECONDS}s each from their "
    f"seeds without a crash (SEC-6)",
    features=["fuzzing"],
    profile="mesh",
    conf=["SEC-6"],
)
def test_every_fuzzer_runs_without_a_crash(tmp_path: Path) -> None:
    artifacts = tmp_path / "fuzz"
    argv = [sys.executable, "-m", "fuzz", "all", "--seconds", str(SECONDS)]
    argv += ["--artifacts", str(artifacts)]
    budget = len(FUZZERS) * (SECONDS + TIMEOUTS.mesh_command)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=budget, check=False)
    summary = [line for line in done.stdout.splitlines() if line.startswith("fuzz ")]
    crashes = sorted(p.name for p in artifacts.glob("*")) if artifacts.exists() else []
    assert done.returncode == 0, (
        f"expected every fuzzer to finish without a crash; exit {done.returncode}, "
        f"summary {summary}, crash inputs {crashes} in {artifacts}; "
        f"stderr tail: {done.stderr[-2000:]}"
    )
    reported = sorted(line.split()[1] for line in summary)
    assert reported == sorted(FUZZERS), (
        f"expected the fuzzers {sorted(FUZZERS)} to report; saw {reported} ({summary})"
    )
