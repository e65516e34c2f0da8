"""The ``isthmus`` command line."""

from __future__ import annotations

import click

from mesh.identity.cli import identity


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="isthmus")
def main() -> None:
    """Isthmus: a multicluster service mesh speaking Linkerd's user-facing API."""


main.add_command(identity)
