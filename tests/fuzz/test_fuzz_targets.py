"""The fuzz targets (SEC-6) as unit tests: seeds, kept crash inputs and random bytes.

Every input a fuzzer ever crashed on is saved under ``tests/fuzz/crashes/<target>/``
and replayed here, so a fixed crash stays fixed. The seeded random inputs make
sure each target accepts arbitrary bytes without the fuzzer installed.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzz.targets import SEEDS, TARGETS

CRASHES = Path(__file__).parent / "crashes"


def _kept(target: str) -> list[Path]:
    folder = CRASHES / target
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_and_kept_crashes_pass(target: str) -> None:
    for seed in SEEDS[target]:
        TARGETS[target](seed)
    for path in _kept(target):
        TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_random_and_mutated_inputs_pass(target: str) -> None:
    rng = random.Random(f"isthmus-{target}")
    for n in range(300):
        if n % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
        else:
            seed = bytearray(rng.choice(SEEDS[target]))
            for _ in range(rng.randrange(1, 8)):
                if seed:
                    seed[rng.randrange(len(seed))] = rng.getrandbits(8)
            data = bytes(seed[: rng.randrange(0, len(seed) + 1)])
        TARGETS[target](data)
