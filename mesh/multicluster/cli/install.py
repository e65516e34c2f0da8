"""``multicluster install``, ``uninstall`` and ``allow``: manifests on stdout, for kubectl.

``install`` reads the control plane's ``linkerd-config`` from the current
context (trust domain for the gateway's identity, the image it runs) unless
``--ignore-cluster``; ``uninstall`` refuses while Links exist, since their
mirror controllers would be left behind, and also names the remote-access
accounts ``allow`` made. ``allow`` talks to no cluster.
"""

from __future__ import annotations

import click

from mesh.identity.names import check_subdomain
from mesh.install.render import dump_all
from mesh.install.target import kube_options, target_from
from mesh.multicluster import labels as mc
from mesh.multicluster.cli import kube
from mesh.multicluster.cli.common import (
    bool_option,
    cluster_values,
    control_plane_values,
    open_cluster,
    settings_options,
)
from mesh.multicluster.render import allow_objects, install_objects, uninstall_references

__all__ = ["allow", "install", "uninstall"]

_linkerd_namespace = click.option(
    "--linkerd-namespace",
    default="linkerd",
    show_default=True,
    help="Namespace of the control plane whose linkerd-config is read.",
)
_ignore_cluster = click.option(
    "--ignore-cluster",
    is_flag=True,
    help="Do not read the cluster; take everything from the defaults and --set.",
)


@click.command("install")
@bool_option("--gateway", "Install the gateway (false: only the Link CRD and remote access).")
@settings_options
@_linkerd_namespace
@_ignore_cluster
@kube_options
@click.pass_context
def install(
    ctx: click.Context,
    gateway: bool,
    image_tag: str | None,
    settings: tuple[str, ...],
    linkerd_namespace: str,
    ignore_cluster: bool,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Print the multicluster extension for kubectl apply: run it in every cluster.

    \b
      isthmus --context east multicluster install | kubectl --context east apply -f -

    Prints the linkerd-multicluster namespace, the Link CRD, the gateway
    (ServiceAccount, Deployment, LoadBalancer Service on ports mc-gateway 4143
    and mc-probe 4191) and the remote-access ServiceAccount whose token
    `multicluster link` hands to other clusters. Settings: --set gateway.enabled,
    gateway.replicas, gateway.serviceType, gateway.port, gateway.probe.port,
    gateway.probe.path, gateway.probe.seconds, identityTrustDomain,
    linkerdNamespace, image.name, image.version (linkerdVersion), image.pullPolicy.
    """
    control_plane = None
    if not ignore_cluster:
        cluster = open_cluster(target_from(ctx, context, kubeconfig), "current")
        ctx.call_on_close(cluster.close)
        control_plane = control_plane_values(cluster, linkerd_namespace, "current")
    values = cluster_values(control_plane, image_tag=image_tag, gateway=gateway, settings=settings)
    click.echo(dump_all(install_objects(values)), nl=False)


@click.command("uninstall")
@_ignore_cluster
@kube_options
@click.pass_context
def uninstall(
    ctx: click.Context, ignore_cluster: bool, context: str | None, kubeconfig: str | None
) -> None:
    """Print references to everything multicluster install (and allow) made, for kubectl delete.

    \b
      isthmus --context east multicluster uninstall | kubectl --context east delete -f -

    Links must be removed first with `multicluster unlink`: deleting the Link CRD
    would leave their mirror controllers and mirrors behind. Only objects that
    exist are printed, so kubectl delete succeeds (--ignore-cluster prints all).
    """
    values = cluster_values(None)
    extra: list[kube.Manifest] = []
    references = uninstall_references(values)
    if not ignore_cluster:
        cluster = open_cluster(target_from(ctx, context, kubeconfig), "current")
        ctx.call_on_close(cluster.close)
        try:
            links = _links(cluster)
            selector = f"{mc.EXTENSION}={mc.EXTENSION_NAME}"
            for kind in (kube.CLUSTER_ROLE, kube.CLUSTER_ROLE_BINDING):
                extra += cluster.list(kind, selector=selector)
            references = [
                ref for ref in uninstall_references(values, extra) if _exists(cluster, ref)
            ]
        except kube.ClusterError as e:
            raise click.ClickException(
                f"cannot list what the extension made: {e} (--ignore-cluster prints the "
                "install's objects without looking)"
            ) from None
        if links:
            commands = "\n".join(
                f"  isthmus multicluster unlink --cluster-name {name} | kubectl delete -f -"
                for name in links
            )
            raise click.ClickException(
                f"Links exist in this cluster ({', '.join(links)}); remove them first:\n{commands}"
            )
    if not references:
        click.echo("isthmus: nothing of the multicluster extension is installed here", err=True)
    click.echo(dump_all(references), nl=False)


def _exists(cluster: kube.Cluster, ref: kube.Manifest) -> bool:
    kind = kube.KINDS[ref["kind"]]
    meta = ref["metadata"]
    return cluster.get(kind, meta["name"], meta.get("namespace")) is not None


def _links(cluster: kube.Cluster) -> list[str]:
    try:
        items = cluster.list(kube.LINK, mc.NAMESPACE)
    except kube.ClusterError as e:
        if e.status == 404:
            return []  # the Link CRD is not installed: no Links
        raise
    return sorted(str(item["metadata"]["name"]) for item in items)


def _service_account_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        check_subdomain("service account name", value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


@click.command("allow")
@click.option(
    "--service-account-name",
    required=True,
    callback=_service_account_name,
    help="Name of the ServiceAccount (in linkerd-multicluster) to create.",
)
def allow(service_account_name: str) -> None:
    """Print a remote-access ServiceAccount, its token and RBAC, for kubectl apply.

    \b
      isthmus --context east multicluster allow --service-account-name west-access \\
        | kubectl --context east apply -f -
      isthmus --context east multicluster link --cluster-name east \\
        --service-account-name west-access | kubectl --context west apply -f -

    Gives each linked cluster its own credentials, revocable alone; the default
    account comes with `multicluster install`. Apply it after install (it goes
    into the linkerd-multicluster namespace).
    """
    click.echo(dump_all(allow_objects(cluster_values(None), service_account_name)), nl=False)
