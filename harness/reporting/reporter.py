"""The reporting plugin, registered when ``--report-dir`` is given.

Where tests run (the single process, or each xdist worker) it attaches a JSON record to
every phase report — the test's conformance metadata, its evidence at teardown and the
path of a diagnostics bundle when a setup or call phase failed. The controller folds
those reports into results and writes the reports at session finish. The record travels
as a report attribute, which xdist serialises with the rest of the report.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import diagnostics
from harness.reporting import conformance, environment, html
from harness.reporting.evidence import EVIDENCE_KEY
from harness.reporting.records import REPORT_ATTR, TestResult, marker_problems, meta_of
from harness.session import ClusterSession

HTML_NAME = "report.html"
YAML_NAME = "conformance.yaml"
JUNIT_NAME = "junit.xml"
ALLURE_DIR = "allure-results"
DIAGNOSTICS_DIR = "diagnostics"
_DIAGNOSED = pytest.StashKey[str]()
_NAMESPACE = pytest.StashKey[str]()


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


class Reporter:
    def __init__(self, config: pytest.Config, report_dir: Path, session: ClusterSession | None):
        self.config = config
        self.report_dir = report_dir
        self.session = session
        self.results: dict[str, TestResult] = {}
        self.collection_errors: dict[str, str] = {}
        self.started = time.time()
        self.written = False
        self.kube: Mapping[str, diagnostics.KubeLike] | None = None

    # -- where tests run ----------------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        problems = [p for item in items for p in marker_problems(item)]
        if problems:
            raise pytest.UsageError("invalid conformance markers:\n  " + "\n  ".join(problems))

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        """Note the ``kube`` clients and a test's ``namespace``, however it asked for them."""
        value = yield
        if fixturedef.argname == "kube" and isinstance(value, Mapping):
            self.kube = value
        elif fixturedef.argname == "namespace" and isinstance(value, str):
            request.node.stash[_NAMESPACE] = value
        return value

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        carried: dict[str, Any] = {"meta": meta_of(item)}
        if report.when == "teardown" and EVIDENCE_KEY in item.stash:
            carried["evidence"] = item.stash[EVIDENCE_KEY].snapshot()
        if report.failed and report.when in ("setup", "call"):
            bundle = self._diagnose(item, report)
            if bundle:
                carried["diagnostics"] = bundle
        setattr(report, REPORT_ATTR, carried)
        return report

    def _diagnose(self, item: pytest.Item, report: pytest.TestReport) -> str | None:
        """Collect a diagnostics bundle once per test that used the ``namespace`` fixture."""
        namespace = item.stash.get(_NAMESPACE, None)
        kube = self.kube
        if _DIAGNOSED in item.stash or namespace is None or kube is None:
            return None
        namespaces = [namespace, *item.stash.get(diagnostics.EXTRA_NAMESPACES, [])]
        relative = f"{DIAGNOSTICS_DIR}/{diagnostics.bundle_name(item.nodeid)}"
        item.stash[_DIAGNOSED] = relative
        path = diagnostics.collect(
            kube, namespaces, self.report_dir / relative, test_id=item.nodeid, phase=report.when
        )
        text = f"diagnostics bundle: {path}"
        addsection = getattr(report.longrepr, "addsection", None)
        if callable(addsection):
            addsection("isthmus diagnostics", text)
        else:
            report.sections.append(("isthmus diagnostics", text))
        item.user_properties.append(("diagnostics", str(path)))  # JUnit reads teardown's
        return relative

    # -- on the controller ----------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if is_controller(self.config):
            self.results.setdefault(report.nodeid, TestResult(report.nodeid)).add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if is_controller(self.config) and report.failed:
            self.collection_errors[report.nodeid] = report.longreprtext

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not is_controller(self.config) or self.config.option.collectonly:
            return
        self.report_dir.mkdir(parents=True, exist_ok=True)
        results = list(self.results.values())
        run = {
            "startedAt": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "durationSeconds": round(time.time() - self.started, 1),
            "exitStatus": int(exitstatus),
        }
        impl = environment.implementation(self.config)
        env = environment.fingerprint(self.config, self.session)
        document = conformance.build(results, impl, env, run)
        (self.report_dir / YAML_NAME).write_text(conformance.dump(document))
        page = html.render(results, impl, env, run, sorted(self.collection_errors.items()))
        (self.report_dir / HTML_NAME).write_text(page)
        self.written = True

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.written:
            terminalreporter.write_sep("-", "isthmus reports")
            terminalreporter.write_line(f"conformance report: {self.report_dir / HTML_NAME}")
            terminalreporter.write_line(f"conformance data:   {self.report_dir / YAML_NAME}")


def enable(config: pytest.Config, report_dir: Path, session: ClusterSession | None) -> Reporter:
    """Register the reporter writing into ``report_dir``; point JUnit and allure there too."""
    report_dir = (config.invocation_params.dir / report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(config.option, "xmlpath") and not config.option.xmlpath:
        config.option.xmlpath = str(report_dir / JUNIT_NAME)
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(report_dir / ALLURE_DIR)
    reporter = Reporter(config, report_dir, session)
    config.pluginmanager.register(reporter, "isthmus-reporter")
    return reporter
