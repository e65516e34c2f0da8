"""jq filters over JSON text, through libjq (the ``jq`` package), as the seeds write them.

    jq_values(".responseInitEvent | select( . != null ) | .httpStatus", tap_output)

The text may hold many JSON values one after another (``viz tap -o json`` prints one
per event), exactly as the ``jq`` command reads its input. A filter that does not
compile, or input that is not JSON, raises ``ValueError`` naming the filter.
"""

from __future__ import annotations

from typing import Any

import jq

__all__ = ["jq_values"]


def jq_values(expression: str, text: str) -> list[Any]:
    """Every value ``expression`` outputs over the JSON values of ``text``, in order."""
    try:
        program = jq.compile(expression)
    except ValueError as e:
        raise ValueError(f"jq filter {expression!r} does not compile: {e}") from e
    try:
        return list(program.input_text(text).all())
    except ValueError as e:
        raise ValueError(f"jq filter {expression!r} failed on its input: {e}") from e
