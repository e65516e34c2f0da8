"""The ``isthmus`` command line: a registry of command groups, each defined with its package."""

from __future__ import annotations

import click

from mesh.check.cli import check
from mesh.identity.cli import identity
from mesh.inject.cli import inject
from mesh.install.cli import install, uninstall
from mesh.install.components import component
from mesh.install.target import KubeTarget, kube_options
from mesh.multicluster.cli import multicluster
from mesh.viz.cli import viz


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="isthmus")
@kube_options
@click.pass_context
def main(ctx: click.Context, context: str | None, kubeconfig: str | None) -> None:
    """Isthmus: a multicluster service mesh speaking Linkerd's user-facing API."""
    ctx.obj = KubeTarget(context=context, kubeconfig=kubeconfig)


main.add_command(install)
main.add_command(uninstall)
main.add_command(check)
main.add_command(inject)
main.add_command(identity)
main.add_command(component)
main.add_command(multicluster)
main.add_command(viz)
main.add_command(
    click.Group("mc", commands=multicluster.commands, hidden=True, help="Alias of multicluster.")
)
