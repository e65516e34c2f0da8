"""``multicluster link``, ``link-gen`` and ``unlink``.

``link`` and ``link-gen`` run against the TARGET (``--context target``) and
print what is applied to the SOURCE: they read the target's gateway Service,
remote-access token, ``linkerd-config`` and, from the kubeconfig, the API
server's address and CA. Before printing, ``link`` makes one request to that
address with the new credentials, so a link to an API server that cannot be
reached (or a token it rejects) is reported instead of silently accepted
(CONF-44); ``--skip-api-check`` prints it anyway. ``unlink`` runs against the
SOURCE and lists what to delete there: the controller, the Link, the mirrors,
credentials and RBAC (CONF-18), and, when it is the last Link, the federated
services no controller is left to prune.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mesh.install.render import dump_all
from mesh.install.target import KubeTarget, kube_options, target_from
from mesh.multicluster import labels as mc
from mesh.multicluster.cli import kube
from mesh.multicluster.cli.common import (
    bool_option,
    cluster_values,
    control_plane_values,
    open_cluster,
    settings_options,
)
from mesh.multicluster.linking import (
    DEFAULT_FEDERATED_SELECTOR,
    DEFAULT_REMOTE_DISCOVERY_SELECTOR,
    DEFAULT_SELECTOR,
    GatewayFacts,
    LinkError,
    LinkOptions,
    check_cluster_name,
    credentials_kubeconfig,
    credentials_secret,
    gateway_facts,
    link_object,
    service_mirror_objects,
    unlink_references,
)
from mesh.multicluster.mirror import federated
from mesh.multicluster.values import McValues

__all__ = ["link", "link_gen", "unlink"]

F = TypeVar("F", bound=Callable[..., Any])


def _cluster_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        check_cluster_name(value)
    except LinkError as e:
        raise click.BadParameter(str(e)) from None
    return value


def _split_lists(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    return [item.strip() for text in value for item in text.split(",") if item.strip()]


_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--cluster-name",
        required=True,
        callback=_cluster_name,
        help="Name of the target cluster: the Link's name and the suffix of its mirrors.",
    ),
    click.option(
        "--api-server-address",
        help="Address the source cluster reaches the target's API server at "
        "[default: the server of the kubeconfig context].",
    ),
    click.option(
        "--service-account-name",
        default=mc.REMOTE_ACCESS_SA,
        show_default=True,
        help="Remote-access ServiceAccount whose token the source uses (see `allow`).",
    ),
    click.option(
        "--namespace",
        default=mc.NAMESPACE,
        show_default=True,
        help="Namespace of the multicluster extension (both clusters).",
    ),
    click.option(
        "--linkerd-namespace",
        default="linkerd",
        show_default=True,
        help="Namespace of the target's control plane.",
    ),
    click.option(
        "--selector",
        default=DEFAULT_SELECTOR,
        show_default=True,
        help="Services matching this label selector are mirrored via the gateway.",
    ),
    click.option(
        "--remote-discovery-selector",
        default=DEFAULT_REMOTE_DISCOVERY_SELECTOR,
        show_default=True,
        help="Services matching this are mirrored in remote-discovery (pod-to-pod) mode.",
    ),
    click.option(
        "--federated-service-selector",
        default=DEFAULT_FEDERATED_SELECTOR,
        show_default=True,
        help="Services matching this join <svc>-federated.",
    ),
    click.option(
        "--excluded-labels",
        multiple=True,
        callback=_split_lists,
        metavar="KEYS",
        help="Labels never copied to mirrors (comma-separated, repeatable).",
    ),
    click.option(
        "--excluded-annotations",
        multiple=True,
        callback=_split_lists,
        metavar="KEYS",
        help="Annotations never copied to mirrors (comma-separated, repeatable).",
    ),
    click.option(
        "--gateway-addresses",
        default="",
        help="Comma-separated gateway addresses [default: the gateway Service's "
        "LoadBalancer ingress].",
    ),
    click.option(
        "--gateway-port",
        type=click.IntRange(1, 65535),
        help="Gateway port [default: the gateway Service's mc-gateway port].",
    ),
    bool_option(
        "--gateway",
        "Link through the target's gateway (false: no gateway fields; "
        "only remote-discovery and federated services).",
    ),
    click.option(
        "--skip-api-check",
        is_flag=True,
        help="Print the link even if the API server cannot be reached with it.",
    ),
]


def _link_options(command: F) -> F:
    for option in reversed(_OPTIONS):
        command = option(command)
    return kube_options(command)


def _server_and_ca(target: KubeTarget) -> tuple[str, bytes | None]:
    """The kubeconfig context's API server address and CA (PEM), if it names one."""
    config = target.config()
    cluster = config.cluster
    ca: bytes | None = None
    if cluster.certificate_auth_data:
        ca = base64.b64decode(cluster.certificate_auth_data)
    elif cluster.certificate_auth:
        path = Path(str(config.abs_file(cluster.certificate_auth)))
        try:
            ca = path.read_bytes()
        except OSError as e:
            raise click.ClickException(
                f"cannot read the kubeconfig's CA file {path}: {e}"
            ) from None
    return cluster.server, ca


def _token(cluster: kube.Cluster, namespace: str, account: str) -> tuple[str, bytes]:
    """The account's bearer token and the cluster CA its token Secret carries."""
    hint = (
        "run `isthmus multicluster install` on the target"
        if account == mc.REMOTE_ACCESS_SA
        else f"run `isthmus multicluster allow --service-account-name {account}` on the target"
    )
    if cluster.get(kube.SERVICE_ACCOUNT, account, namespace) is None:
        raise click.ClickException(
            f"the target has no ServiceAccount {namespace}/{account}: {hint}"
        )
    for secret in cluster.list(kube.SECRET, namespace):
        meta = secret.get("metadata") or {}
        if (
            secret.get("type") == "kubernetes.io/service-account-token"
            and (meta.get("annotations") or {}).get("kubernetes.io/service-account.name") == account
        ):
            data = secret.get("data") or {}
            if data.get("token"):
                ca = base64.b64decode(data.get("ca.crt") or "")
                return base64.b64decode(data["token"]).decode(), ca
    raise click.ClickException(
        f"the target has no token for ServiceAccount {namespace}/{account} yet: the token "
        f"controller fills Secret {mc.token_secret_name(account)} soon after install; "
        f"retry, or {hint}"
    )


def _check_api(kubeconfig: dict[str, Any], server: str) -> None:
    advice = (
        "if the source cluster reaches the target's API server at another address, pass "
        "--api-server-address; --skip-api-check prints the link anyway"
    )
    try:
        remote = kube.connect(kubeconfig)
        try:
            remote.get(kube.NAMESPACE, mc.NAMESPACE)  # what the account may read
        finally:
            remote.close()
    except kube.ClusterError as e:
        if e.status in (401, 403):
            raise click.ClickException(
                f"the target's API server at {server} rejected the link's credentials ({e}); "
                "re-apply `isthmus multicluster install` (or `allow`) on the target"
            ) from None
        raise click.ClickException(
            f"the target's API server at {server} cannot be reached with the link's "
            f"credentials: {e}; {advice}"
        ) from None


def _render(ctx: click.Context, params: dict[str, Any], with_controller: bool) -> None:
    options = LinkOptions(
        cluster_name=params["cluster_name"],
        namespace=params["namespace"],
        selector=params["selector"],
        remote_discovery_selector=params["remote_discovery_selector"],
        federated_service_selector=params["federated_service_selector"],
        excluded_labels=tuple(params["excluded_labels"]),
        excluded_annotations=tuple(params["excluded_annotations"]),
    )
    try:
        options.validate()
    except LinkError as e:
        raise click.UsageError(str(e)) from None
    target = target_from(ctx, params["context"], params["kubeconfig"])
    cluster = open_cluster(target, "target")
    ctx.call_on_close(cluster.close)
    try:
        control_plane = control_plane_values(cluster, params["linkerd_namespace"], "target")
        gateway: GatewayFacts | None = None
        if params["gateway"]:
            service = cluster.get(kube.SERVICE, mc.GATEWAY_NAME, options.namespace)
            if service is None:
                raise click.ClickException(
                    f"the target ({cluster.server}) has no gateway Service "
                    f"{options.namespace}/{mc.GATEWAY_NAME}: run `isthmus multicluster install` "
                    "there, or pass --gateway=false to link without a gateway"
                )
            gateway = gateway_facts(
                service, addresses=params["gateway_addresses"], port=params["gateway_port"]
            )
        token, token_ca = _token(cluster, options.namespace, params["service_account_name"])
    except kube.ClusterError as e:
        raise click.ClickException(f"cannot read the target cluster: {e}") from None
    except LinkError as e:
        raise click.ClickException(str(e)) from None
    server, ca = _server_and_ca(target)
    server = params["api_server_address"] or server
    ca = ca or token_ca
    if not ca:
        raise click.ClickException(
            "neither the kubeconfig context (certificate-authority or -data) nor the token "
            f"Secret of {params['service_account_name']} (ca.crt) holds the target's CA, "
            "which the mirror controller needs to verify the target's API server"
        )
    try:
        kubeconfig = credentials_kubeconfig(
            cluster_name=options.cluster_name,
            server=server,
            token=token,
            ca_data=ca,
            user=params["service_account_name"],
        )
    except LinkError as e:
        raise click.UsageError(str(e)) from None
    if not params["skip_api_check"]:
        _check_api(kubeconfig, server)
    values: McValues = cluster_values(
        control_plane, image_tag=params.get("image_tag"), settings=params.get("settings", ())
    )
    docs = [
        credentials_secret(values, options, kubeconfig),
        link_object(
            values,
            options,
            target_cluster_domain=control_plane.cluster_domain,
            target_control_plane_ns=control_plane.control_plane_ns,
            gateway=gateway,
        ),
    ]
    if with_controller:
        docs += service_mirror_objects(values, options)
    click.echo(dump_all(docs), nl=False)


@click.command("link")
@_link_options
@settings_options
@click.pass_context
def link(ctx: click.Context, /, **params: Any) -> None:
    """Print what links the SOURCE to this TARGET cluster; apply it to the source.

    \b
      isthmus --context east multicluster link --cluster-name east \\
        | kubectl --context west apply -f -

    Prints the credentials Secret (a kubeconfig with the remote-access token, the
    CA and the API server address of the --context), the Link (gateway addresses,
    port, identity and probe read from the target's gateway Service) and the
    Link's service-mirror controller with its RBAC. Exported services of the
    target then appear in the source as <svc>-<cluster-name>.
    """
    _render(ctx, params, with_controller=True)


@click.command("link-gen")
@_link_options
@click.pass_context
def link_gen(ctx: click.Context, /, **params: Any) -> None:
    """Print only the credentials Secret and the Link (no controller); apply to the source.

    \b
      isthmus --context east multicluster link-gen --cluster-name east \\
        | kubectl --context west apply -f -
    """
    _render(ctx, params, with_controller=False)


@click.command("unlink")
@click.option(
    "--cluster-name", required=True, callback=_cluster_name, help="Name of the linked cluster."
)
@click.option(
    "--namespace",
    default=mc.NAMESPACE,
    show_default=True,
    help="Namespace of the multicluster extension.",
)
@kube_options
@click.pass_context
def unlink(
    ctx: click.Context,
    cluster_name: str,
    namespace: str,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Print references to a link's objects in this SOURCE cluster, for kubectl delete.

    \b
      isthmus --context west multicluster unlink --cluster-name east \\
        | kubectl --context west delete -f -

    Lists the Link, its mirror controller, its credentials and RBAC, and every
    mirror of the linked cluster's services (with their Endpoints). The linked
    cluster's entries in federated services are pruned by the other Links'
    controllers once the Link is gone; when no other Link is left, the federated
    services are listed too.
    """
    cluster = open_cluster(target_from(ctx, context, kubeconfig), "source")
    ctx.call_on_close(cluster.close)
    found: list[kube.Manifest] = []
    linked = f"{mc.CLUSTER_NAME}={cluster_name}"
    try:
        for kind, name in (
            (kube.LINK, cluster_name),
            (kube.SECRET, mc.credentials_secret_name(cluster_name)),
        ):
            obj = cluster.get(kind, name, namespace)
            if obj is not None:
                found.append({"apiVersion": kind.api_version, "kind": kind.kind, **obj})
        for kind in (
            kube.DEPLOYMENT,
            kube.SERVICE_ACCOUNT,
            kube.ROLE,
            kube.ROLE_BINDING,
            kube.SECRET,
        ):
            found += cluster.list(kind, namespace, linked)
        for kind in (kube.CLUSTER_ROLE, kube.CLUSTER_ROLE_BINDING):
            found += cluster.list(kind, selector=linked)
        for selector in (
            f"{linked},{mc.MIRRORED_SERVICE}=true",
            f"{mc.REMOTE_DISCOVERY}={cluster_name}",
        ):
            found += cluster.list(kube.ENDPOINTS, selector=selector)
            found += cluster.list(kube.SERVICE, selector=selector)
        if found:
            mirrors = cluster.list(kube.SERVICE, selector=f"{mc.MIRRORED_SERVICE}=true")
            try:
                links = cluster.list(kube.LINK, namespace)
            except kube.ClusterError as e:
                if e.status != 404:
                    raise
                links = []  # the Link CRD is not served: no Link is left
            found += [dict(o) for o in federated.leftovers(mirrors, links, cluster_name)]
    except kube.ClusterError as e:
        raise click.ClickException(f"cannot list the link's objects in the source: {e}") from None
    if not found:
        raise click.ClickException(
            f"nothing of a link to {cluster_name!r} in this cluster ({cluster.server}): run "
            "unlink against the SOURCE cluster, where link's output was applied"
        )
    click.echo(dump_all(unlink_references(found)), nl=False)
