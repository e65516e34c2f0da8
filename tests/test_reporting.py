"""The reporter: a small fake suite run with ``--report-dir`` (in process and with xdist)."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.plugin import ENV_STATE
from harness.reporting import Evidence, summarise_traffic

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent

INI = f"""
[pytest]
pythonpath = {REPO}
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

TRAFFIC = {
    "records": [
        {"i": 0, "status": 200, "latency_ms": 1.5, "error": None,
         "responder": {"pod": "server-a", "cluster": "east", "client_id": "client.ns.east"}},
        {"i": 1, "status": 200, "latency_ms": 3.0, "error": None,
         "responder": {"pod": "server-b", "cluster": "west", "client_id": "client.ns.east"}},
        {"i": 2, "status": 503, "latency_ms": 9.0, "error": None,
         "responder": {"pod": "server-b", "cluster": "west", "client_id": None}},
        {"i": 3, "status": None, "latency_ms": None, "responder": None,
         "error": "ConnectError: refused"},
    ],
    "summary": {"count": 4},
}  # fmt: skip

SUITE = f'''
import pytest

TRAFFIC = {TRAFFIC!r}


@pytest.mark.conformance(
    short_name="split-<weights>",
    description="splits <b>traffic</b> & more",
    features=["TrafficSplit"],
    profile="multicluster",
    conf=["CONF-19", "CONF-20"],
)
def test_pass(evidence):
    with evidence.step("deploy <server>"):
        with evidence.step("inner"):
            pass
    evidence.traffic(TRAFFIC, "east -> west")
    evidence.record("note", {{"html": "<script>alert(1)</script>"}})


@pytest.mark.conformance(short_name="fails", description="always fails",
                         profile="multicluster", conf=["CONF-21"])
def test_fail(evidence):
    evidence.record("seen", [1, 2])
    assert 1 == 2, "expected <one> to equal two"


@pytest.mark.conformance(short_name="skips", profile="mesh", features=["Policy"])
def test_skip():
    pytest.skip("mesh lacks <feature>")


def test_unmarked():
    """Unmarked suite test described by its docstring.

    More text that is not the description.
    """
'''


def forget_real_suites(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs share sys.modules: hide the repo's own ``suites`` package."""
    for name in [m for m in sys.modules if m == "suites" or m.startswith("suites.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv(ENV_STATE, str(pytester.path / "state"))
    forget_real_suites(monkeypatch)
    pytester.makeini(INI)
    pytester.makeconftest('pytest_plugins = ["fixtures.evidence"]')
    suites = pytester.mkpydir("suites")
    (suites / "mesh").mkdir()
    (suites / "mesh" / "__init__.py").write_text("")
    (suites / "mesh" / "test_fake.py").write_text(SUITE)
    pytester.makepyfile(test_other="def test_plain():\n    pass\n")
    return pytester


def _run(suite: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    out = suite.path / "out"
    result = suite.runpytest("--report-dir", "out", "--state-dir", str(suite.path / "state"), *args)
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    return result, out


def _tests(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["shortName"]: t for p in document["profiles"] for t in p["tests"]}


def _check_reports(out: Path) -> str:
    document = yaml.safe_load((out / "conformance.yaml").read_text())
    assert document["apiVersion"] == "isthmus.io/v1alpha1"
    assert document["kind"] == "ConformanceReport"
    assert document["implementation"]["name"] == "isthmus"
    assert [p["name"] for p in document["profiles"]] == ["mesh", "multicluster"]
    by_profile = {p["name"]: p["summary"] for p in document["profiles"]}
    assert by_profile["mesh"] == {"success": 1, "failure": 0, "skipped": 1, "total": 2}
    assert by_profile["multicluster"] == {"success": 1, "failure": 1, "skipped": 0, "total": 2}
    assert document["summary"]["total"] == 4  # test_other.py is not a conformance test

    tests = _tests(document)
    assert tests["split-<weights>"]["result"] == "success"
    assert tests["split-<weights>"]["conf"] == ["CONF-19", "CONF-20"]
    assert tests["split-<weights>"]["features"] == ["TrafficSplit"]
    assert isinstance(tests["split-<weights>"]["durationSeconds"], float)
    assert tests["fails"]["result"] == "failure"
    assert "expected <one> to equal two" in tests["fails"]["message"]
    assert tests["skips"]["result"] == "skipped"
    assert tests["skips"]["message"] == "mesh lacks <feature>"
    unmarked = tests["test_unmarked"]
    assert unmarked["description"] == "Unmarked suite test described by its docstring."
    assert unmarked["name"] == "suites/mesh/test_fake.py::test_unmarked"

    env = document["environment"]
    assert env["provider"] == "netns"
    assert env["topology"]["name"] == "two-flat"
    assert {c["name"] for c in env["topology"]["clusters"]} == {"source", "target"}
    assert env["kubernetesVersions"]
    assert env["isthmusVersion"]
    assert re.fullmatch(r"[0-9a-f]{40}", env["git"]["commit"])

    matrix = document["conformanceMatrix"]
    rows = {r["id"]: r for r in matrix["ids"]}
    assert rows["CONF-19"]["status"] == "success"
    assert rows["CONF-21"]["status"] == "failure"
    assert rows["CONF-1"] == {"id": "CONF-1", "status": "not covered", "tests": []}
    assert {"SUB-1", "SEC-6"} <= set(rows)
    assert matrix["summary"]["total"] == len(rows)

    junit = ET.parse(out / "junit.xml").getroot()
    suite_el = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert suite_el is not None
    assert (suite_el.get("tests"), suite_el.get("failures"), suite_el.get("skipped")) == (
        "5", "1", "1",
    )  # fmt: skip
    assert list((out / "allure-results").glob("*-result.json"))

    page = (out / "report.html").read_text()
    for absent in ("<script", "<link", "url("):
        assert absent not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    for escaped in (
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "splits &lt;b&gt;traffic&lt;/b&gt; &amp; more",
        "split-&lt;weights&gt;",
        "mesh lacks &lt;feature&gt;",
        "expected &lt;one&gt; to equal two",
        "east -&gt; west",
        "deploy &lt;server&gt;",
    ):
        assert escaped in page
    for shown in ("CONF-19, CONF-20", "phase: call", "<details", "two-flat", "Other tests"):
        assert shown in page
    assert "test_plain" in page
    assert page.index("Conformance matrix") < page.index("<h2>Summary")
    assert "not covered" in page
    return page


def test_reports_in_process(suite: pytest.Pytester) -> None:
    result, out = _run(suite)
    _check_reports(out)
    result.stdout.fnmatch_lines([f"conformance report: {out / 'report.html'}"])


def test_reports_with_xdist(suite: pytest.Pytester) -> None:
    _, out = _run(suite, "-n", "2")
    page = _check_reports(out)
    assert "p50_ms" in page  # evidence crossed from the workers to the controller


def test_invalid_profile_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_bad='import pytest\n\n@pytest.mark.conformance(profile="nope")\n'
        "def test_x():\n    pass\n"
    )
    result = suite.runpytest("--report-dir", "out", "test_bad.py")
    result.stderr.fnmatch_lines(["*conformance profile 'nope' is not one of*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_traffic_summary_counts_statuses_responders_and_percentiles() -> None:
    summary = summarise_traffic(TRAFFIC)
    assert summary == {
        "count": 4,
        "statuses": {"200": 2, "503": 1, "none": 1},
        "responders": {"east/server-a": 1, "west/server-b": 2},
        "clientIdentities": {"client.ns.east": 2, "none": 1},
        "errors": {"ConnectError: refused": 1},
        "p50_ms": 3.0,
        "p99_ms": 9.0,
    }


def test_evidence_steps_time_and_mark_failures() -> None:
    evidence = Evidence()
    with evidence.step("outer"), evidence.step("inner"):
        pass
    with pytest.raises(ValueError, match="boom"), evidence.step("broken"):
        raise ValueError("boom")
    evidence.record("odd", {"path": Path("/x"), "pair": (1, 2)})
    snap = evidence.snapshot()
    assert [(s["name"], s["depth"], s["ok"]) for s in snap["steps"]] == [
        ("outer", 0, True), ("inner", 1, True), ("broken", 0, False),
    ]  # fmt: skip
    assert snap["steps"][2]["error"] == "ValueError: boom"
    assert snap["records"][0]["data"] == {"path": "/x", "pair": [1, 2]}
