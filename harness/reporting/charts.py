"""Small inline bar charts of weighted-split evidence for the HTML report.

A test records ``Evidence.record(SPLIT_SHARE, data)`` once per step of a split
(``split_share`` builds ``data``): the step's name, the weight each backend was
given and the requests each answered. ``render`` draws one row per backend,
the observed share as a bar with the expected share as a tick over it, in
plain HTML and CSS (the report has no scripts). Data that does not have this
shape renders as nothing, so a malformed record never breaks the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

__all__ = ["CSS", "SPLIT_SHARE", "render", "split_share"]

SPLIT_SHARE = "split-share"
"""The evidence kind of one step of a weighted split."""

CSS = """
.bars{margin:.3em 0 .6em;max-width:640px}.bars .row{display:flex;align-items:center;gap:8px}
.bars .name{width:200px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bars .track{position:relative;flex:1;height:14px;background:#eef}
.bars .bar{position:absolute;left:0;top:0;bottom:0;background:#5b8def}
.bars .tick{position:absolute;top:-3px;bottom:-3px;width:2px;background:#c0392b}
.bars .val{width:150px;font-size:90%;white-space:nowrap}
"""


def split_share(
    step: str,
    weights: Mapping[str, float],
    observed: Mapping[str, int],
    **extra: Any,
) -> dict[str, Any]:
    """The evidence of one split step: ``weights`` given and requests ``observed`` per backend."""
    total = sum(observed.values())
    weight_sum = sum(weights.values())
    return {
        "step": step,
        "weights": dict(weights),
        "expected": {b: (w / weight_sum if weight_sum else 0.0) for b, w in weights.items()},
        "observed": dict(observed),
        "shares": {b: (n / total if total else 0.0) for b, n in observed.items()},
        "requests": total,
        **extra,
    }


def _pct(value: float) -> str:
    return f"{max(0.0, min(1.0, value)) * 100:.1f}%"


def render(kind: Any, data: Any) -> str:
    """The chart of a ``SPLIT_SHARE`` record; ``""`` for anything else."""
    if kind != SPLIT_SHARE or not isinstance(data, dict):
        return ""
    expected, observed = data.get("expected"), data.get("observed")
    if not isinstance(expected, dict) or not isinstance(observed, dict):
        return ""
    try:
        total = sum(int(n) for n in observed.values())
        rows = []
        for backend in sorted(set(expected) | set(observed)):
            count = int(observed.get(backend, 0))
            share = count / total if total else 0.0
            want = float(expected.get(backend, 0.0))
            rows.append(
                f"<div class=row><span class=name title='{escape(str(backend))}'>"
                f"{escape(str(backend))}</span><span class=track>"
                f"<span class=bar style='width:{_pct(share)}'></span>"
                f"<span class=tick style='left:{_pct(want)}' title='expected'></span></span>"
                f"<span class=val>{count} ({share * 100:.1f}%, want {want * 100:.0f}%)</span>"
                f"</div>"
            )
    except (TypeError, ValueError):
        return ""
    title = escape(str(data.get("step", "")))
    head = f"<b>{title}</b> <span class=muted>{total} requests</span>"
    return f"<div class=bars>{head}{''.join(rows)}</div>"
