"""The Isthmus pytest plugin (entry point ``pytest11``): options, markers, shared clusters.

Options select the provider, topology and Kubernetes version; tests declare what they
need with ``@pytest.mark.requires(clusters=2, network="flat")`` and are skipped, with
the reason, when the topology does not offer it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from harness import reporting
from harness import topology as topo
from harness.providers.netns.provider import STATE_ROOT
from harness.session import ENV_OWNER, ClusterSession

SESSION_KEY = pytest.StashKey[ClusterSession]()
ENV_STATE = "ISTHMUS_SESSION_STATE_DIR"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("isthmus", "Isthmus multicluster harness")
    g.addoption(
        "--provider",
        default="netns",
        choices=["netns", "k3d", "existing"],
        help="how clusters are made (default: netns)",
    )
    g.addoption(
        "--topology",
        default="two-flat",
        help="topology name in clusters/topologies or a path (default: two-flat)",
    )
    g.addoption(
        "--k8s-version",
        default=None,
        help="run every cluster on this pinned Kubernetes version (e.g. 1.34)",
    )
    g.addoption(
        "--mesh",
        default=None,
        help="the mesh adapter the suites drive (default: $ISTHMUS_MESH, else isthmus)",
    )
    g.addoption(
        "--keep-clusters",
        action="store_true",
        help="leave the clusters running after the run (reused by the next run "
        "with --keep-clusters); tear down with `python -m harness clusters down`",
    )
    g.addoption(
        "--state-dir",
        default=None,
        type=Path,
        help="where provisioning state lives (default: per run under /run/isthmus)",
    )
    g.addoption(
        "--report-dir",
        default=None,
        type=Path,
        help="write conformance reports (HTML, YAML, JUnit, allure) here",
    )


def _topology(config: pytest.Config) -> topo.Topology:
    t = topo.load(config.getoption("--topology"))
    version = config.getoption("--k8s-version")
    return t.with_version(version) if version else t


@pytest.hookimpl(tryfirst=True)  # before junitxml and allure read the paths set here
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires: topology requirements (clusters, network)")
    config.addinivalue_line("markers", reporting.MARKER_HELP)
    try:
        t = _topology(config)
    except topo.TopologyError as e:
        raise pytest.UsageError(str(e)) from None
    state = config.getoption("--state-dir")
    if state is None:
        if os.environ.get(ENV_STATE):
            state = Path(os.environ[ENV_STATE])
        elif config.getoption("--keep-clusters"):
            state = STATE_ROOT / f"kept-{t.name}"
        else:
            state = STATE_ROOT / f"run-{uuid.uuid4().hex[:8]}"
    # xdist workers inherit the environment: they share this session's state dir and owner.
    os.environ[ENV_STATE] = str(state)
    if _is_controller(config):
        os.environ[ENV_OWNER] = str(os.getpid())
    config.stash[SESSION_KEY] = ClusterSession(
        config.getoption("--provider"), t, Path(state), config.getoption("--keep-clusters")
    )
    report_dir = config.getoption("--report-dir")
    if report_dir is not None:
        reporting.enable(config, report_dir, config.stash[SESSION_KEY])


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not _is_controller(config):
        return
    if session.provisioned() is not None:
        session.release()
    os.environ.pop(ENV_STATE, None)
    os.environ.pop(ENV_OWNER, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    t = config.stash[SESSION_KEY].topology
    for item in items:
        for mark in item.iter_markers("requires"):
            need = int(mark.kwargs.get("clusters", 1))
            network = mark.kwargs.get("network")
            if len(t.clusters) < need:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"needs {need} clusters; topology {t.name} has {len(t.clusters)}"
                    )
                )
            elif network and t.network != network:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"needs a {network} network; topology {t.name} is {t.network}"
                    )
                )


def cluster_session(config: pytest.Config) -> ClusterSession:
    return config.stash[SESSION_KEY]
