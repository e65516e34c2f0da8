"""Split evidence: the share statistics the split suite judges by, and their bar charts."""

from __future__ import annotations

import math

import pytest

from harness.reporting.charts import SPLIT_SHARE, render, split_share
from suites.split._support import ALPHA, binomial_two_sided, chi2_sf, judge


def test_binomial_two_sided_is_exact() -> None:
    # symmetric case: P(X <= 2 or X >= 8) for Binomial(10, 0.5) = 112 / 1024
    assert math.isclose(binomial_two_sided(2, 10, 0.5), 112 / 1024)
    assert binomial_two_sided(5, 10, 0.5) == pytest.approx(1.0)
    assert binomial_two_sided(0, 0, 0.3) == 1.0


def test_chi2_survival_matches_known_quantiles() -> None:
    assert chi2_sf(13.816, 2) == pytest.approx(0.001, rel=1e-3)
    assert chi2_sf(3.841, 1) == pytest.approx(0.05, rel=1e-3)
    assert chi2_sf(18.467, 4) == pytest.approx(0.001, rel=1e-3)
    with pytest.raises(ValueError, match="df"):
        chi2_sf(1.0, 3)


@pytest.mark.parametrize(
    ("counts", "weights", "holds"),
    [
        ({"a": 118, "b": 122}, {"a": 50, "b": 50}, True),
        ({"a": 60, "b": 180}, {"a": 50, "b": 50}, False),
        ({"a": 60, "b": 180}, {"a": 250, "b": 750}, True),
        ({"a": 0, "b": 200}, {"a": 0, "b": 100}, True),
        ({"a": 1, "b": 199}, {"a": 0, "b": 100}, False),  # a weight-0 backend got a request
        ({"a": 80, "b": 79, "c": 81}, {"a": 1, "b": 1, "c": 1}, True),
        ({"a": 150, "b": 50, "c": 40}, {"a": 1, "b": 1, "c": 1}, False),
    ],
)
def test_judge(counts: dict[str, int], weights: dict[str, float], holds: bool) -> None:
    verdict = judge(counts, weights)
    assert verdict.holds is holds, verdict.describe()
    assert (verdict.p_value >= ALPHA) or not holds


def test_split_share_chart_draws_one_bar_per_backend() -> None:
    data = split_share("step 2: 50/50", {"source": 50, "target": 50}, {"source": 90, "target": 110})
    assert data["expected"] == {"source": 0.5, "target": 0.5}
    assert data["shares"] == {"source": 0.45, "target": 0.55}
    html = render(SPLIT_SHARE, data)
    assert html.count("class=row") == 2
    assert "width:45.0%" in html
    assert "left:50.0%" in html
    assert "step 2: 50/50" in html


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("traffic", {"expected": {}, "observed": {}}),
        (SPLIT_SHARE, "not a mapping"),
        (SPLIT_SHARE, {"expected": {"a": "x"}, "observed": {"a": 1}}),
        (SPLIT_SHARE, {"expected": {"a": 1}}),
    ],
)
def test_other_or_malformed_records_draw_nothing(kind: str, data: object) -> None:
    assert render(kind, data) == ""


def test_chart_text_is_escaped() -> None:
    html = render(SPLIT_SHARE, split_share("<b>", {"<x>": 1}, {"<x>": 3}))
    assert "<x>" not in html
    assert "&lt;x&gt;" in html
