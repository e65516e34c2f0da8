"""Multicluster: what the operator sees - check --multicluster, gateways, probe state.

``check --multicluster`` judges every link of a cluster, so the test expecting it to
pass runs alone, after the other tests of the run (``mesh_disruptive``); the tests
that break a link on purpose use links of their own and look only at what concerns
those links.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from fixtures.mesh import Mesh
from fixtures.multicluster import MC_NAMESPACE, Linked
from harness.adapters.multicluster import GatewayRow
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import deploy_server
from suites.multicluster._support import (
    LINK_LABEL,
    addresses,
    endpoints,
    eventually,
    export_service,
    gateway_addresses,
    get,
    mirror,
    mirrors_of,
    patch_link,
    private_link,
    private_name,
)

SOURCE, TARGET = "source", "target"
NOT_FOUND_PATH = "/isthmus-no-such-probe-path"


def _row(rows: list[GatewayRow], cluster: str) -> GatewayRow:
    found = [r for r in rows if r.cluster == cluster]
    assert found, f"`multicluster gateways` has no row for {cluster}: {rows}"
    return found[0]


def _kubeconfig_server(linked: Linked, cluster: str, link: str) -> str:
    secret = get(
        linked.kube[cluster],
        f"/api/v1/namespaces/{MC_NAMESPACE}/secrets/cluster-credentials-{link}",
    )
    assert secret is not None, f"[{cluster}] no Secret cluster-credentials-{link}"
    config = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
    servers = {str(c["cluster"]["server"]) for c in config.get("clusters") or []}
    assert len(servers) == 1, f"expected one API server in the link kubeconfig; saw {servers}"
    return servers.pop()


@pytest.mark.requires(clusters=2)
@pytest.mark.mesh_disruptive(rank=-10)
@pytest.mark.conformance(
    short_name="mc-check-and-gateways",
    description="On healthy links check --multicluster passes (CONF-43); gateways prints "
    "CLUSTER ALIVE NUM_SVC LATENCY with the target alive, a latency, and NUM_SVC equal to "
    "the link's mirrors (CONF-17); the controller's gateway_alive is 1 (CONF-11); the link "
    "credentials name the API server of the target's kubeconfig (CONF-44)",
    features=["multicluster", "multicluster-status"],
    profile="multicluster",
    conf=["CONF-11", "CONF-17", "CONF-43", "CONF-44"],
)
def test_healthy_links_pass_check_and_show_alive_gateways(
    mesh_alone: Mesh, linked: Linked, evidence: Evidence
) -> None:
    assert linked.clusters[TARGET].api_server == _kubeconfig_server(linked, SOURCE, TARGET), (
        "CONF-44: the link's credentials should name the target kubeconfig's API server "
        f"{linked.clusters[TARGET].api_server}"
    )
    for link in linked.links:
        result = linked.adapter.check_multicluster(
            linked.clusters[link.source], wait=TIMEOUTS.link_ready
        )
        evidence.record("check", {"cluster": link.source, "output": result.output[-4000:]})
        assert result.success, f"CONF-43: {result.describe()}"

    def alive() -> float:
        m = linked.mirror_metrics(SOURCE, TARGET)
        value = m.sum("gateway_alive", target_cluster_name=TARGET)
        assert value == 1, m.describe("gateway_alive")
        return value

    eventually("CONF-11: gateway_alive{target_cluster_name=target} == 1", alive)

    def consistent() -> GatewayRow:
        row = _row(linked.adapter.gateways(linked.clusters[SOURCE]), TARGET)
        count = len(mirrors_of(linked, SOURCE, TARGET))
        assert row.num_svc == count, f"NUM_SVC {row.num_svc}, mirrors in the API {count}"
        return row

    row = eventually("CONF-17: gateways NUM_SVC matches the link's mirrors", consistent)
    evidence.record("gateways", row.__dict__)
    assert row.is_alive, f"CONF-17: expected {TARGET} ALIVE True; saw {row}"
    assert row.latency != "-", f"CONF-17: expected a latency for a live gateway; saw {row}"


def _probe_path(path: str) -> Any:
    def edit(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for doc in docs:
            if doc.get("kind") == "Link":
                doc["spec"]["probeSpec"]["path"] = path
        return docs

    return edit


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-gateway-probe",
    description="A link whose gateway probe does not get HTTP 200 (a path the gateway "
    "answers 404) moves mirror addresses to notReadyAddresses, reports gateway_alive 0 and "
    "ALIVE False with latency '-' in gateways; once the probe succeeds the addresses are "
    "ready again and gateway_alive is 1 (CONF-10, CONF-11, CONF-17)",
    features=["multicluster", "multicluster-status"],
    profile="multicluster",
    conf=["CONF-10", "CONF-11", "CONF-17"],
)
def test_failed_gateway_probes_mark_mirrors_not_ready(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    ns, name = mc_namespace, private_name("probe")
    src = linked.kube[SOURCE]
    want = gateway_addresses(linked, TARGET)
    deploy_server(linked.mesh, ns, TARGET, name="web")
    with private_link(linked, name, f"{LINK_LABEL}={name}", edit=_probe_path(NOT_FOUND_PATH)):
        export_service(linked, TARGET, ns, "probed", app="web", key=LINK_LABEL, value=name)
        mirror(linked, SOURCE, ns, f"probed-{name}")

        def state(ready: bool) -> dict[str, Any]:
            eps = endpoints(src, ns, f"probed-{name}")
            assert eps is not None, "no mirror Endpoints"
            seen = (addresses(eps), addresses(eps, "notReadyAddresses"))
            expected = (want, []) if ready else ([], want)
            assert seen == expected, f"(ready, notReady) = {seen}; expected {expected}"
            m = linked.mirror_metrics(SOURCE, name)
            alive = m.sum("gateway_alive", target_cluster_name=name)
            assert alive == (1 if ready else 0), f"gateway_alive {m.describe('gateway_alive')}"
            return eps

        with evidence.step("probes get 404: addresses become not ready"):
            eps = eventually(
                "CONF-10: mirror addresses not ready after failed probes",
                lambda: state(False),
                TIMEOUTS.gateway_probe,
            )
        evidence.record("endpoints-failing", eps)
        row = _row(linked.adapter.gateways(linked.clusters[SOURCE]), name)
        evidence.record("gateways-failing", row.__dict__)
        assert not row.is_alive, f"CONF-17: expected {name} ALIVE False; saw {row}"
        assert row.latency == "-", f"CONF-17: expected latency '-' when not alive; saw {row}"
        with evidence.step("probe the real path: addresses become ready again"):
            patch_link(src, name, {"spec": {"probeSpec": {"path": "/ready"}}})
            eps = eventually(
                "CONF-10: mirror addresses ready again after a successful probe",
                lambda: state(True),
                TIMEOUTS.gateway_probe,
            )
        evidence.record("endpoints-recovered", eps)


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="mc-unreachable-api-server",
    description="link --api-server-address puts that address in the link credentials; a "
    "link to an API server that cannot be reached is reported - by link itself, and, when "
    "applied anyway, by check --multicluster naming the link (CONF-44, CONF-43)",
    features=["multicluster", "multicluster-status"],
    profile="multicluster",
    conf=["CONF-43", "CONF-44"],
)
def test_a_link_to_an_unreachable_api_server_is_reported(
    linked: Linked, mc_namespace: str, evidence: Evidence
) -> None:
    name = private_name("far")
    node = linked.clusters[TARGET].node_ips[0]
    address = f"https://{node}:1"  # the target's node, a port nothing listens on
    override = f"--api-server-address={address}"
    code, out, err = linked.adapter.link_render(linked.clusters[TARGET], name, (override,))
    evidence.record("link-unreachable", {"exit": code, "stderr": err[-2000:]})
    assert code != 0, (
        f"CONF-44: expected `link {override}` to report the unreachable API server; it "
        f"exited 0 and printed {len(out)} characters"
    )
    assert address in err or node in err, (
        f"CONF-44: expected the error to name the address {address}; stderr: {err[-1000:]}"
    )
    skip = ("--skip-api-check",)
    with private_link(linked, name, f"{LINK_LABEL}={name}", (override, *skip), wait=False):
        server = _kubeconfig_server(linked, SOURCE, name)
        assert server == address, (
            f"CONF-44: expected --api-server-address {address} in the link credentials; "
            f"saw {server}"
        )

        def reported() -> list[str]:
            result = linked.adapter.check_multicluster(linked.clusters[SOURCE])
            assert not result.success, "check --multicluster passed"
            naming = [f for f in result.failures if name in f]
            assert naming, f"no failure names {name}: {result.failures}"
            return naming

        failures = eventually(
            f"CONF-43: check --multicluster reports the link {name}", reported, TIMEOUTS.link_ready
        )
        evidence.record("check-failures", failures)
