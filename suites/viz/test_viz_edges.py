"""viz edges: SRC -> DST with CLIENT_ID and SERVER_ID, in one cluster and across two.

One cluster: after the module's clients have called the server, ``viz edges pod``
lists client -> server with the client's and the server's identities. Across clusters
(gateway mode, the ``linked`` fixture): a source client calls the mirror
``server-target``; in the source ``viz edges`` shows the edge to the target cluster's
service with the gateway's identity as SERVER_ID (gateway mode hides the server), and
``viz stat svc`` names the mirror's remote cluster; in the target, the server's edge
shows the gateway's identity as its client.
"""

from __future__ import annotations

import json

import pytest

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import Workloads
from harness.reporting import Evidence
from harness.settings import TIMEOUTS
from suites.mesh._support import converge, deploy_server, service_url
from suites.multicluster._support import mirror
from suites.viz._support import VizApp, row_named, viz_of

EDGES_COLUMNS = ["SRC", "DST", "SRC_NS", "DST_NS", "CLIENT_ID", "SERVER_ID", "MSG"]
SOURCE, TARGET = "source", "target"
GATEWAY_SA = "linkerd-gateway"


@pytest.mark.conformance(
    short_name="viz-edges-one-cluster",
    description="viz edges lists SRC DST SRC_NS DST_NS CLIENT_ID SERVER_ID MSG: each meshed "
    "client pod -> the server pod with the client's and the server's mTLS identities (CONF-48)",
    features=["injection", "mtls", "proxy-metrics", "viz"],
    profile="mesh",
    conf=["CONF-48"],
)
def test_edges_show_both_identities(viz_app: VizApp, evidence: Evidence) -> None:
    app = viz_app
    app.client.run(app.url, 5, 0, 5, concurrency=1)
    table = app.viz("edges", "pod")
    as_json = app.viz("edges", "pod", "-o", "json")
    evidence.record("viz edges pod", table.stdout)
    header = table.stdout.splitlines()[0].split()
    assert header == EDGES_COLUMNS, f"expected columns {EDGES_COLUMNS}; got:\n{table.stdout}"
    edges = json.loads(as_json.stdout)
    to_server = [e for e in edges if e["src"] == "client" and e["dst"].startswith("server-")]
    assert len(to_server) == 1, f"expected one edge client -> server pod; got:\n{table.stdout}"
    edge = to_server[0]
    assert edge["client_id"] == app.identity("client"), edge
    assert edge["server_id"] == app.identity("server"), edge
    row = row_named(table.stdout, "client")
    assert {app.identity("client"), app.identity("server")} <= set(row), table.stdout


@pytest.mark.requires(clusters=2)
@pytest.mark.conformance(
    short_name="viz-edges-cross-cluster-gateway",
    description="Across clusters in gateway mode, viz edges in the source shows the client -> "
    "the target's service (DST@target) with the gateway's identity as SERVER_ID, viz stat svc "
    "names the mirror's remote cluster, and in the target the server's edge comes from the "
    "gateway's identity (CONF-48, CONF-42)",
    features=["multicluster", "multicluster-gateway", "injection", "mtls", "viz"],
    profile="multicluster",
    conf=["CONF-48", "CONF-42"],
)
def test_cross_cluster_edges_in_gateway_mode(
    linked: Linked, mc_namespace: str, workloads: Workloads, evidence: Evidence
) -> None:
    ns, mesh = mc_namespace, linked.mesh
    viz = viz_of(mesh.adapter)
    with evidence.step("export a target server in gateway mode; call its mirror from the source"):
        deploy_server(mesh, ns, TARGET, name="server")
        linked.export(TARGET, ns, "server", "true")
        mirror(linked, SOURCE, ns, "server-target")
        client = workloads.client(SOURCE)
        url = service_url(mesh, SOURCE, ns, "server-target")
        converge(client, url)
        client.run(url, 10, 0, 5, concurrency=1)
    gateway_id = mesh.identity(TARGET, MC_NAMESPACE, GATEWAY_SA)
    client_id = mesh.identity(SOURCE, ns, "default")
    src, dst = mesh.clusters[SOURCE], mesh.clusters[TARGET]
    t = TIMEOUTS.viz_command
    source_edges = viz.viz(src, "edges", "pod", "-n", ns, "-o", "json", timeout=t)
    source_table = viz.viz(src, "edges", "pod", "-n", ns, timeout=t)
    stat = viz.viz(src, "stat", "svc", "-n", ns, "--window", "2s", "-o", "wide", timeout=t + 2)
    target_edges = viz.viz(dst, "edges", "deploy", "-n", ns, "-o", "json", timeout=t)
    for what, out in {
        "source viz edges pod": source_table.stdout,
        "source viz stat svc -o wide": stat.stdout,
        "target viz edges deploy -o json": target_edges.stdout,
    }.items():
        evidence.record(what, out)

    remote = [e for e in json.loads(source_edges.stdout) if e["src"] == "client"]
    assert len(remote) == 1, f"expected one edge from the client; got:\n{source_table.stdout}"
    edge = remote[0]
    assert (edge["dst"], edge["dst_cluster"]) == ("svc/server", TARGET), (
        f"expected the edge to the target cluster's service server; got {edge}"
    )
    assert (edge["client_id"], edge["server_id"]) == (client_id, gateway_id), (
        f"expected CLIENT_ID {client_id} and SERVER_ID the gateway's {gateway_id}; got {edge}"
    )
    assert "svc/server@target" in source_table.stdout, source_table.stdout
    mirror_row = row_named(stat.stdout, "server-target")
    assert mirror_row[-1] == TARGET, (
        f"expected viz stat svc -o wide to name the mirror's cluster {TARGET}; got {mirror_row}"
    )
    inbound = [
        e for e in json.loads(target_edges.stdout) if e["dst"] == "server" and e["client_id"]
    ]
    assert any(e["client_id"] == gateway_id for e in inbound), (
        f"expected the target's server to have an edge from the gateway's identity "
        f"{gateway_id}; got {inbound}"
    )
