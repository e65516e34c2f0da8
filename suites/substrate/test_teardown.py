"""Substrate: a torn-down netns run leaves nothing on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.workloads import MANIFESTS
from harness import topology as topo
from harness.kube import Kube
from harness.plugin import cluster_session
from harness.providers.netns.provider import NetnsProvider, leftovers


def test_teardown_leaves_nothing(pytestconfig: pytest.Config, tmp_path: Path) -> None:
    """(h) after teardown no namespace, bridge, route, iptables rule, mount or process remains."""
    if cluster_session(pytestconfig).provider_name != "netns":
        pytest.skip("teardown hygiene is checked on the netns provider")
    t = topo.load(Path(__file__).with_name("isolated.yaml"))
    version = pytestconfig.getoption("--k8s-version")
    t = t.with_version(version) if version else t
    state = cluster_session(pytestconfig).state_dir / "isolated"
    provider = NetnsProvider(state)
    try:
        (cluster,) = provider.up(t)
        rid = cluster.extra["rid"]
        k = Kube.connect(cluster)
        try:
            k.create_namespace("teardown")
            k.apply(
                (MANIFESTS / "testapp-server.yaml").read_text(),
                namespace="teardown",
                name="server",
                replicas="1",
                cluster="solo",
                service_type="ClusterIP",
            )
            k.wait_deployment_ready("server", "teardown")
        finally:
            k.close()
    finally:
        provider.down()
    left = leftovers(rid, state)
    assert left == [], f"expected nothing of run {rid} left after teardown; found: {left}"
