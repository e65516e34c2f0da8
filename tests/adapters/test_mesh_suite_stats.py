"""The mesh suite's binomial tail, against values computed independently."""

from __future__ import annotations

import math

import pytest

from suites.mesh._support import binomial_cdf


def test_edges() -> None:
    assert binomial_cdf(-1, 10, 0.5) == 0.0
    assert binomial_cdf(10, 10, 0.5) == 1.0
    assert binomial_cdf(0, 10, 0.5) == pytest.approx(0.5**10)


def test_matches_a_direct_sum_and_is_monotonic() -> None:
    n, p = 300, 1 / 6
    direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(31))
    assert binomial_cdf(30, n, p) == pytest.approx(direct)
    values = [binomial_cdf(k, n, p) for k in range(0, 60, 5)]
    assert values == sorted(values)


def test_the_suite_threshold_separates_a_starved_replica_from_a_fair_one() -> None:
    # 300 requests over 3 replicas, claim: each gets at least 1/6; reject at 0.001.
    assert binomial_cdf(100, 300, 1 / 6) > 0.999  # a fair share passes
    assert binomial_cdf(20, 300, 1 / 6) < 0.001  # a starved replica fails
