"""``isthmus inject``: manifests in, the same manifests meshed out.

Reads YAML from files or stdin (``-``), writes YAML to stdout and a line per
workload to stderr (``deployment "bb" annotated``), as ``linkerd inject`` does.
``--manual`` adds the proxy itself, using the mesh's configuration read from the
cluster (``linkerd-config`` and the trust roots) or, with ``--ignore-cluster``,
from defaults and flags. Exits 1 if any workload could not be injected.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click
import yaml

from mesh.inject.config import InjectConfig, cli_created_by
from mesh.inject.workloads import inject_documents
from mesh.install.cli import build_values
from mesh.install.controlplane import CONFIG_MAP, TRUST_ROOTS_CONFIG_MAP
from mesh.install.render import dump_all, load_all
from mesh.install.target import KubeTarget, kube_options, target_from

__all__ = ["inject"]


def _cluster_config(target: KubeTarget, namespace: str) -> InjectConfig:
    """The mesh's configuration as installed in ``namespace`` of the target cluster."""
    import httpx2
    from lightkube import ApiError
    from lightkube.resources.core_v1 import ConfigMap

    client = target.client()
    try:
        config = client.get(ConfigMap, CONFIG_MAP, namespace=namespace)
        roots = client.get(ConfigMap, TRUST_ROOTS_CONFIG_MAP, namespace=namespace)
    except ApiError as e:
        if e.status.code == 404:
            raise click.ClickException(
                f"no control plane in namespace {namespace} ({e.status.message}); "
                "install it first, or pass --ignore-cluster"
            ) from None
        raise click.ClickException(f"cannot read the mesh's configuration: {e}") from None
    except httpx2.HTTPError as e:
        raise click.ClickException(f"cannot reach the cluster: {e}") from None
    finally:
        client.close()
    try:
        return InjectConfig.from_texts(
            (config.data or {}).get("values", ""),
            (roots.data or {}).get("ca-bundle.crt", ""),
            cli_created_by(),
        )
    except ValueError as e:
        raise click.ClickException(f"ConfigMap {namespace}/{CONFIG_MAP}: {e}") from None


def _local_config(
    anchors: Path | None, control_plane_ns: str | None, settings: tuple[str, ...]
) -> InjectConfig:
    values = build_values(control_plane_ns=control_plane_ns, settings=settings)
    if anchors is None:
        click.echo(
            "isthmus: no --identity-trust-anchors-file: injected proxies will not trust any peer",
            err=True,
        )
    pem = anchors.read_text() if anchors else ""
    return InjectConfig(values=values, trust_anchors_pem=pem, created_by=cli_created_by())


@click.command("inject")
@click.argument("files", nargs=-1, type=click.File("r"))
@click.option(
    "-f", "--filename", "more_files", multiple=True, type=click.File("r"),
    help="A manifest file, or - for stdin (repeatable).",
)  # fmt: skip
@click.option(
    "--manual", is_flag=True, help="Add the proxy now instead of leaving it to the webhook."
)
@click.option(
    "--ignore-cluster", is_flag=True,
    help="With --manual: do not read the configuration from the cluster; use defaults and --set.",
)  # fmt: skip
@click.option(
    "--identity-trust-anchors-file", "anchors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --ignore-cluster: the trust anchors the proxies trust.",
)  # fmt: skip
@click.option("--control-plane-ns", help="Namespace of the control plane [default: linkerd].")
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", help="With --ignore-cluster."
)
@kube_options
@click.pass_context
def inject(
    ctx: click.Context,
    files: tuple[IO[str], ...],
    more_files: tuple[IO[str], ...],
    manual: bool,
    ignore_cluster: bool,
    anchors: Path | None,
    control_plane_ns: str | None,
    settings: tuple[str, ...],
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Mesh the workloads in FILES (- for stdin): annotate their pods for injection.

    \b
      cat deploy.yaml | isthmus inject - | kubectl apply -f -
      isthmus inject --manual deploy.yaml | kubectl apply -f -

    Objects or pod templates annotated linkerd.io/inject: disabled are left alone.
    """
    sources: list[IO[str]] = [*files, *more_files]
    if not sources:
        sources = [sys.stdin]
    docs = []
    for source in sources:
        try:
            docs += load_all(source.read())
        except yaml.YAMLError as e:
            raise click.ClickException(f"{source.name}: not YAML: {e}") from None
    config = None
    if manual:
        if ignore_cluster:
            config = _local_config(anchors, control_plane_ns, settings)
        else:
            target = target_from(ctx, context, kubeconfig)
            config = _cluster_config(target, control_plane_ns or "linkerd")
    out, outcomes = inject_documents(docs, config, manual=manual)
    click.echo(dump_all(out), nl=False)
    if outcomes:
        click.echo("", err=True)
    for outcome in outcomes:
        click.echo(str(outcome), err=True)
    if any(o.result == "failed" for o in outcomes):
        ctx.exit(1)
