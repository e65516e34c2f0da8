"""The conformance list (CONF, SUB and SEC ids) the reports' matrix is drawn against.

``conformance_ids.yaml`` next to this module is the repository's copy of the list in
the shared ``CONFORMANCE.md``: each id with its section and its one-line statement.
``parse_markdown`` reads that file's shape (``## Section`` headings, then
``- CONF-<n> text`` items); ``python -m harness.reporting.conformance_ids FILE``
prints the YAML regenerated from it. A unit test keeps the copy in step with the list.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

__all__ = ["DATA", "ConformanceId", "dump", "load", "parse_markdown"]

DATA = Path(__file__).with_name("conformance_ids.yaml")
_ITEM = re.compile(r"^- ((?:CONF|SUB|SEC)-\d+) (.+)$")
_ID = re.compile(r"^(CONF|SUB|SEC)-(\d+)$")


@dataclass(frozen=True)
class ConformanceId:
    """One line of the list: ``CONF-12`` in section "Linking and mirroring", and its text."""

    id: str
    section: str
    text: str


def parse_markdown(text: str) -> list[ConformanceId]:
    """Every id of a CONFORMANCE.md text in file order; ``ValueError`` on a repeated id."""
    section = ""
    found: list[ConformanceId] = []
    seen: set[str] = set()
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        m = _ITEM.match(line.strip())
        if m is None:
            continue
        if m.group(1) in seen:
            raise ValueError(f"conformance id {m.group(1)} appears twice")
        seen.add(m.group(1))
        found.append(ConformanceId(m.group(1), section, m.group(2).strip()))
    return found


def dump(ids: list[ConformanceId]) -> str:
    """The YAML form of ``ids`` (what ``conformance_ids.yaml`` holds)."""
    doc = {
        "source": "CONFORMANCE.md (shared list); regenerate with "
        "`python -m harness.reporting.conformance_ids <path to CONFORMANCE.md>`",
        "ids": [{"id": i.id, "section": i.section, "text": i.text} for i in ids],
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


@cache
def load(path: Path = DATA) -> tuple[ConformanceId, ...]:
    """The ids of the repository's copy, validated (known prefix, unique)."""
    data = yaml.safe_load(path.read_text())
    ids = []
    seen: set[str] = set()
    for entry in data["ids"]:
        ident = str(entry["id"])
        if _ID.match(ident) is None or ident in seen:
            raise ValueError(f"{path}: bad or repeated conformance id {ident!r}")
        seen.add(ident)
        ids.append(ConformanceId(ident, str(entry["section"]), str(entry["text"])))
    return tuple(ids)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.reporting.conformance_ids CONFORMANCE.md", file=sys.stderr)
        return 2
    sys.stdout.write(dump(parse_markdown(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
