"""The ``isthmus`` command line: a registry of command groups, each defined with its package.

Each group is imported when it is asked for (``isthmus <group> ...``, or to list
it in ``--help``), not when the CLI starts: every mesh container runs
``isthmus component <name>``, and a sidecar proxy started that way must not
carry the install, check, viz and multicluster commands (Kubernetes models,
YAML, HTTP clients) in its memory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import click

from mesh.install.target import KubeTarget, kube_options


def _command(module: str, attribute: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attribute} is not a click command")
        return command

    return load


def _mc_alias() -> click.Command:
    multicluster = _command("mesh.multicluster.cli", "multicluster")()
    assert isinstance(multicluster, click.Group)
    return click.Group(
        "mc", commands=multicluster.commands, hidden=True, help="Alias of multicluster."
    )


_SUBCOMMANDS: dict[str, Callable[[], click.Command]] = {
    "install": _command("mesh.install.cli", "install"),
    "uninstall": _command("mesh.install.cli", "uninstall"),
    "check": _command("mesh.check.cli", "check"),
    "inject": _command("mesh.inject.cli", "inject"),
    "identity": _command("mesh.identity.cli", "identity"),
    "component": _command("mesh.install.components", "component"),
    "multicluster": _command("mesh.multicluster.cli", "multicluster"),
    "viz": _command("mesh.viz.cli", "viz"),
    "mc": _mc_alias,
}
"""Subcommand name -> how to load it."""


class _LazyGroup(click.Group):
    """A group whose subcommands (``_SUBCOMMANDS``) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _SUBCOMMANDS:
            command = _SUBCOMMANDS[cmd_name]()
            self.add_command(command, cmd_name)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="isthmus")
@kube_options
@click.pass_context
def main(ctx: click.Context, context: str | None, kubeconfig: str | None) -> None:
    """Isthmus: a multicluster service mesh speaking Linkerd's user-facing API."""
    ctx.obj = KubeTarget(context=context, kubeconfig=kubeconfig)
