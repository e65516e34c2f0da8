"""``isthmus multicluster``: install the extension, link clusters, and inspect the links.

Every verb prints manifests for kubectl (install, uninstall, allow, link,
link-gen, unlink) or a report (gateways, check); messages for people go to
stderr. ``multicluster check`` is ``check --multicluster``'s part, defined with
``check``.
"""

from __future__ import annotations

import click

from mesh.check.cli import multicluster_check
from mesh.multicluster.cli.gateways import gateways
from mesh.multicluster.cli.install import allow, install, uninstall
from mesh.multicluster.cli.link import link, link_gen, unlink

__all__ = ["multicluster"]


@click.group("multicluster")
def multicluster() -> None:
    """Link clusters: mirror services exported by one into another, reached through its gateway.

    \b
    In every cluster, after `isthmus install` (all sharing one trust anchor):
      isthmus --context east multicluster install | kubectl --context east apply -f -
    Then, to let west use east's exported services (label mirror.linkerd.io/exported=true):
      isthmus --context east multicluster link --cluster-name east \\
        | kubectl --context west apply -f -
      isthmus --context west check --multicluster
      isthmus --context west multicluster gateways
    """


for _command in (install, uninstall, allow, link, link_gen, unlink, gateways, multicluster_check):
    multicluster.add_command(_command)
