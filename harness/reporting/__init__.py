"""Conformance reports and test evidence: HTML, YAML, JUnit XML and allure results.

Suites record evidence through the ``evidence`` fixture and declare records with
``@pytest.mark.conformance(...)``; the harness plugin enables the reporter when
``--report-dir`` is given.
"""

from harness.reporting.evidence import EVIDENCE_KEY, Evidence, evidence_for, summarise_traffic
from harness.reporting.records import MARKER_HELP, PROFILES
from harness.reporting.reporter import Reporter, enable

__all__ = [
    "EVIDENCE_KEY",
    "MARKER_HELP",
    "PROFILES",
    "Evidence",
    "Reporter",
    "enable",
    "evidence_for",
    "summarise_traffic",
]
