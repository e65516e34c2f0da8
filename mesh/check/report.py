"""How ``isthmus check`` prints its results: Linkerd's layout, as text or JSON.

Text groups results under their category, each marked with a glyph (``GLYPHS``)
for holds, warning or fails; warnings and failures get an indented line saying what is wrong and
one saying what to do. JSON has Linkerd's ``check -o json`` shape:
``{"success": bool, "categories": [{"categoryName", "checks": [{"description",
"result", "error", "hint"}]}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mesh.check.snapshot import Result, Status

__all__ = ["GLYPHS", "render_json", "render_text", "succeeded"]

GLYPHS = {Status.OK: "√", Status.WARN: "‼", Status.FAIL: "×"}  # noqa: RUF001


def succeeded(results: Sequence[Result]) -> bool:
    """True unless some result failed (warnings do not fail a check)."""
    return all(r.status is not Status.FAIL for r in results)


def _categories(results: Sequence[Result]) -> dict[str, list[Result]]:
    grouped: dict[str, list[Result]] = {}
    for result in results:
        grouped.setdefault(result.category, []).append(result)
    return grouped


def render_text(results: Sequence[Result]) -> str:
    lines: list[str] = []
    for category, items in _categories(results).items():
        lines += [category, "-" * len(category)]
        for result in items:
            lines.append(f"{GLYPHS[result.status]} {result.description}")
            if result.status is not Status.OK:
                if result.message:
                    lines.append(f"    {result.message}")
                if result.hint:
                    lines.append(f"    try: {result.hint}")
        lines.append("")
    overall = GLYPHS[Status.OK] if succeeded(results) else GLYPHS[Status.FAIL]
    lines.append(f"Status check results are {overall}")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[Result]) -> str:
    categories = [
        {
            "categoryName": category,
            "checks": [
                {
                    "description": r.description,
                    "result": r.status.value,
                    **({"error": r.message} if r.message else {}),
                    **({"hint": r.hint} if r.hint else {}),
                }
                for r in items
            ],
        }
        for category, items in _categories(results).items()
    ]
    return json.dumps({"success": succeeded(results), "categories": categories}, indent=2) + "\n"
