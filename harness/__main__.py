"""``python -m harness``: build upstream binaries and bring topologies up and down by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness import topology as topo
from harness import upstream
from harness.providers import ProviderError, get_provider
from harness.providers.netns.provider import STATE_ROOT
from harness.session import tear_down_all


def _fail(msg: str) -> None:
    click.secho(f"error: {msg}", fg="red", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Isthmus harness tools: upstream builds and clusters for debugging."""


@main.command("build")
@click.option(
    "--k8s-version",
    default=upstream.DEFAULT_VERSION,
    show_default=True,
    help="Kubernetes version to build (1.35, v1.35 or v1.35.4).",
)
@click.option("--all", "all_versions", is_flag=True, help="Build every pinned version.")
def build_cmd(k8s_version: str, all_versions: bool) -> None:
    """Build (or find cached) kube-apiserver & co, etcd and CoreDNS under ~/.cache/isthmus."""
    try:
        versions = [topo.resolve_version(k8s_version)]
        if all_versions:
            versions = [p.version for p in upstream.KNOWN_VERSIONS.values()]
        for version in versions:
            topo.check_version(version, "--k8s-version")
            upstream.build(version, progress=lambda m: click.echo(f"[build] {m}", err=True))
    except (topo.TopologyError, ValueError, RuntimeError) as e:
        _fail(str(e))


@main.command("versions")
def versions_cmd() -> None:
    """Print the pinned Kubernetes versions, the default first."""
    pins = sorted(
        upstream.KNOWN_VERSIONS.values(), key=lambda p: p.version != upstream.DEFAULT_VERSION
    )
    for pin in pins:
        click.echo(pin.minor)


@main.group()
def clusters() -> None:
    """Bring a topology up or down by hand."""


STATE_OPT = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=STATE_ROOT / "manual",
    show_default=True,
    help="Where the run keeps its state (kubeconfig, logs, PKI).",
)
PROVIDER_OPT = click.option(
    "--provider",
    default="netns",
    show_default=True,
    type=click.Choice(["netns", "k3d", "existing"]),
)


@clusters.command()
@click.argument("topology", default="two-flat")
@click.option("--k8s-version", default=None, help="Run every cluster on this version.")
@PROVIDER_OPT
@STATE_OPT
def up(topology: str, k8s_version: str | None, provider: str, state_dir: Path) -> None:
    """Create the clusters of TOPOLOGY (a name in clusters/topologies or a path)."""
    try:
        t = topo.load(topology)
        if k8s_version:
            t = t.with_version(k8s_version)
        made = get_provider(provider, state_dir).up(t)
    except (topo.TopologyError, ProviderError) as e:
        _fail(str(e))
        return
    for c in made:
        click.echo(f"{c.name}\tdomain={c.domain}\tapi={c.api_server}\tkubeconfig={c.kubeconfig}")
    click.echo(
        f"\nexport KUBECONFIG={state_dir / 'kubeconfig'}  # contexts: "
        + ", ".join(c.context for c in made)
    )


@clusters.command()
@PROVIDER_OPT
@STATE_OPT
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Tear down every run's clusters under --root (pytest runs, kept and manual ones).",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=STATE_ROOT,
    show_default=True,
    help="Where runs keep their state (with --all).",
)
def down(provider: str, state_dir: Path, everything: bool, root: Path) -> None:
    """Tear down what `up` created, leaving nothing behind (--all: every run's clusters)."""
    try:
        if everything:
            runs = tear_down_all(root, provider, click.echo)
            click.echo(f"tore down {len(runs)} run(s) under {root}")
        else:
            get_provider(provider, state_dir).down()
    except ProviderError as e:
        _fail(str(e))


if __name__ == "__main__":
    main()
