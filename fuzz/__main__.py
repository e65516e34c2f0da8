"""``python -m fuzz``: run the fuzzers (SEC-6) with atheris, each in its own process.

  python -m fuzz all --seconds 10        every target for 10 s each (``./run fuzz-short``)
  python -m fuzz http1 --seconds 600     one target for longer (``./run bench fuzz``)

Seeds come from ``fuzz.targets.SEEDS`` (copied into a corpus directory, kept
between runs under ``--corpus``). A crash stops that target: atheris prints the
traceback and writes the input as ``crash-*`` in ``--artifacts``; the command
exits non-zero naming the targets that crashed. Every crash found becomes a
unit test in ``tests/fuzz``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fuzz.targets import SEEDS, TARGETS


def _run_one(name: str) -> None:
    """Inside the child process: hand the target to atheris (argv holds libFuzzer flags)."""
    import logging

    import atheris

    logging.disable(logging.CRITICAL)  # converters log each refusal; millions of inputs
    with atheris.instrument_imports(include=["mesh"]):
        from fuzz.targets import TARGETS as instrumented

    target = instrumented[name]

    def one_input(data: bytes) -> None:
        target(data)

    atheris.Setup([sys.argv[0], *sys.argv[3:]], one_input)
    atheris.Fuzz()


def _fuzz(name: str, seconds: int, corpus: Path, artifacts: Path) -> tuple[int, float]:
    seeds = corpus / name
    seeds.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(SEEDS[name]):
        (seeds / f"seed-{n}").write_bytes(seed)
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "fuzz",
        "--child",
        name,
        f"-max_total_time={seconds}",
        "-rss_limit_mb=1024",
        "-timeout=10",
        f"-artifact_prefix={artifacts}/{name}-",
        "-print_final_stats=1",
        str(seeds),
    ]
    started = time.monotonic()
    code = subprocess.run(argv, check=False).returncode
    return code, time.monotonic() - started


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _run_one(sys.argv[2])
        return
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=[*TARGETS, "all"])
    parser.add_argument("--seconds", type=int, default=10, help="per target")
    parser.add_argument("--corpus", type=Path, help="kept corpus (default: a temporary one)")
    parser.add_argument("--artifacts", type=Path, default=Path("reports/fuzz"))
    args = parser.parse_args()
    names = list(TARGETS) if args.target == "all" else [args.target]
    with tempfile.TemporaryDirectory(prefix="isthmus-fuzz-") as tmp:
        corpus = args.corpus or Path(tmp)
        crashed = []
        for name in names:
            code, took = _fuzz(name, args.seconds, corpus, args.artifacts)
            verdict = "ok" if code == 0 else f"CRASHED (exit {code}, inputs in {args.artifacts})"
            print(f"fuzz {name:<11} {took:6.1f}s  {verdict}", flush=True)
            if code != 0:
                crashed.append(name)
    if crashed:
        raise SystemExit(f"fuzzers crashed: {', '.join(crashed)}")


if __name__ == "__main__":
    main()
