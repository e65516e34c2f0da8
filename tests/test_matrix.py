"""The conformance matrix and the repository's copy of the conformance list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.reporting import conformance_ids, matrix
from harness.reporting.conformance_ids import ConformanceId, parse_markdown
from harness.reporting.records import TestResult

#: the shared list the repository's copy is made from (outside the repository).
SHARED_LIST = Path(os.environ.get("ISTHMUS_CONFORMANCE_MD", "/work/shared/CONFORMANCE.md"))

MARKDOWN = """# Title

Intro that mentions `CONF-12` in passing.

## Linking
- CONF-1 A service appears.
- CONF-2 It carries labels.

## Security (SEC)
- SEC-1 No input blocks the proxy.
"""


def test_parse_markdown_reads_ids_sections_and_texts() -> None:
    assert parse_markdown(MARKDOWN) == [
        ConformanceId("CONF-1", "Linking", "A service appears."),
        ConformanceId("CONF-2", "Linking", "It carries labels."),
        ConformanceId("SEC-1", "Security (SEC)", "No input blocks the proxy."),
    ]


def test_parse_markdown_refuses_a_repeated_id() -> None:
    with pytest.raises(ValueError, match="CONF-1 appears twice"):
        parse_markdown(MARKDOWN + "- CONF-1 again\n")


def test_repository_copy_has_every_kind_of_id_once() -> None:
    ids = [e.id for e in conformance_ids.load()]
    assert len(ids) == len(set(ids))
    assert {i.split("-")[0] for i in ids} == {"CONF", "SUB", "SEC"}
    confs = sorted(int(i.split("-")[1]) for i in ids if i.startswith("CONF-"))
    assert confs == list(range(1, len(confs) + 1)), "CONF ids are numbered without gaps"


@pytest.mark.skipif(not SHARED_LIST.is_file(), reason=f"no shared list at {SHARED_LIST}")
def test_repository_copy_matches_the_shared_list() -> None:
    shared = parse_markdown(SHARED_LIST.read_text())
    copy = list(conformance_ids.load())
    assert [e.id for e in copy] == [e.id for e in shared], (
        "harness/reporting/conformance_ids.yaml is out of date: regenerate it with "
        f"`python -m harness.reporting.conformance_ids {SHARED_LIST}`"
    )
    assert copy == shared


def _result(nodeid: str, outcome: str, conf: list[str]) -> TestResult:
    r = TestResult(nodeid, meta={"conformance": True, "shortName": nodeid, "conf": conf})
    r.phases = {"setup": "passed", "call": outcome, "teardown": "passed"}
    return r


IDS = [ConformanceId(f"CONF-{n}", "s", f"text {n}") for n in range(1, 6)]


def test_matrix_folds_results_per_id() -> None:
    results = [
        _result("a", "passed", ["CONF-1", "CONF-2"]),
        _result("b", "failed", ["CONF-2"]),
        _result("c", "skipped", ["CONF-3"]),
        _result("d", "passed", ["CONF-4"]),
        _result("e", "skipped", ["CONF-4", "CONF-99"]),
    ]
    rows = matrix.build(results, IDS)
    assert [(r.entry.id, r.status) for r in rows] == [
        ("CONF-1", "success"),
        ("CONF-2", "failure"),
        ("CONF-3", "skipped"),
        ("CONF-4", "success"),
        ("CONF-5", "not covered"),
    ]
    assert [t.nodeid for t in rows[1].tests] == ["a", "b"]
    assert matrix.counts(rows) == {
        "success": 2,
        "failure": 1,
        "skipped": 1,
        "not covered": 1,
        "total": 5,
    }
    assert matrix.unknown_ids(results, IDS) == {"CONF-99": ["e"]}
    data = matrix.to_data(rows, matrix.unknown_ids(results, IDS))
    assert data["ids"][4] == {"id": "CONF-5", "status": "not covered", "tests": []}
    assert data["unknownIds"] == {"CONF-99": ["e"]}


def test_a_test_citing_an_id_twice_counts_once() -> None:
    rows = matrix.build([_result("a", "passed", ["CONF-1", "CONF-1"])], IDS)
    assert len(rows[0].tests) == 1
