"""``multicluster gateways``: CLUSTER ALIVE NUM_SVC LATENCY for each Link of this cluster.

Runs against the SOURCE. For each Link with a gateway it counts the link's
mirror Services and asks the link's mirror controller (through the API
server's pod proxy, port 9999 ``/metrics``) whether the gateway is alive and
how long its probes take. A controller that is not running or cannot be read
makes its row ``False`` and ``-``, with a note on stderr saying why.
"""

from __future__ import annotations

import click

from mesh.install.target import kube_options, target_from
from mesh.multicluster import labels as mc
from mesh.multicluster.cli import kube
from mesh.multicluster.cli.common import open_cluster
from mesh.multicluster.gateway_status import (
    ALIVE_METRIC,
    GatewayRow,
    ProbeState,
    probe_state,
    render_table,
)

__all__ = ["gateway_row", "gateways", "read_probe"]


def _running_pod(cluster: kube.Cluster, namespace: str, link: str) -> str | None:
    selector = f"{mc.COMPONENT}={mc.SERVICE_MIRROR_COMPONENT},{mc.CLUSTER_NAME}={link}"
    for pod in cluster.list(kube.POD, namespace, selector):
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if status.get("phase") == "Running" and ready:
            return str(pod["metadata"]["name"])
    return None


def read_probe(cluster: kube.Cluster, namespace: str, link: str) -> tuple[ProbeState | None, str]:
    """What ``link``'s mirror controller says of the gateway, or ``None`` and why not.

    ``ClusterError`` only if the controller's pods cannot be listed.
    """
    pod = _running_pod(cluster, namespace, link)
    if pod is None:
        return None, (
            f"no ready mirror controller pod for {link} (deploy/{mc.service_mirror_name(link)})"
        )
    try:
        text = cluster.proxy_get(namespace, pod, mc.MIRROR_METRICS_PORT, "/metrics")
        state = probe_state(text, link)
    except (kube.ClusterError, ValueError) as e:
        return None, f"cannot read {pod}'s metrics: {e}"
    if state is None:
        return None, f"{pod} reports no {ALIVE_METRIC} for {link} yet"
    return state, ""


def gateway_row(cluster: kube.Cluster, namespace: str, link: str) -> tuple[GatewayRow, str]:
    """``link``'s row, and why it is not alive when that is not the gateway's own answer."""
    services = len(
        cluster.list(kube.SERVICE, selector=f"{mc.CLUSTER_NAME}={link},{mc.MIRRORED_SERVICE}=true")
    )
    state, why = read_probe(cluster, namespace, link)
    if state is None:
        return GatewayRow(link, False, services, None), why
    return GatewayRow(link, state.alive, services, state.latency_p50_ms), ""


@click.command("gateways")
@click.option("--cluster-name", help="Only this linked cluster.")
@click.option(
    "--namespace",
    default=mc.NAMESPACE,
    show_default=True,
    help="Namespace of the multicluster extension.",
)
@kube_options
@click.pass_context
def gateways(
    ctx: click.Context,
    cluster_name: str | None,
    namespace: str,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Show the gateways of the clusters linked to this one: alive, mirrored services, latency.

    \b
      isthmus --context west multicluster gateways
      CLUSTER   ALIVE   NUM_SVC   LATENCY
      east      True    2         3ms

    LATENCY is the median probe latency; `-` when the gateway is not alive.
    """
    cluster = open_cluster(target_from(ctx, context, kubeconfig), "current")
    ctx.call_on_close(cluster.close)
    rows = []
    try:
        try:
            links = cluster.list(kube.LINK, namespace)
        except kube.ClusterError as e:
            if e.status != 404:
                raise
            raise click.ClickException(
                "the Link CRD is not installed here: run `isthmus multicluster install`"
            ) from None
        for item in sorted(links, key=lambda i: str(i["metadata"]["name"])):
            spec = item.get("spec") or {}
            name = str(spec.get("targetClusterName") or item["metadata"]["name"])
            if not spec.get("gatewayAddress") or (cluster_name and name != cluster_name):
                continue
            row, why = gateway_row(cluster, namespace, name)
            if why:
                click.echo(f"isthmus: {name}: {why}", err=True)
            rows.append(row)
    except kube.ClusterError as e:
        raise click.ClickException(f"cannot read the links: {e}") from None
    if not rows:
        click.echo("isthmus: no linked clusters with a gateway", err=True)
    click.echo(render_table(rows), nl=False)
