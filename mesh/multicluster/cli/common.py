"""What the ``multicluster`` verbs share: flags, values from the cluster, and error wording.

``cluster_values`` builds ``McValues`` the way Linkerd's extension does: the
control plane's facts (cluster domain, trust domain, its namespace, and the
image it runs, so the extension runs the same build) from the cluster's
``linkerd-config``, then the flags, then ``--set``. ``open_cluster``
wraps ``kube.connect`` so a failure is a ``ClickException`` saying which
context could not be used. ``connect`` is looked up at call time, so tests can
replace ``kube.connect`` with a fake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import yaml

from mesh.install.controlplane import CONFIG_MAP
from mesh.install.values import Values
from mesh.multicluster.cli import kube
from mesh.multicluster.values import McValues

__all__ = [
    "bool_option",
    "cluster_values",
    "control_plane_values",
    "open_cluster",
    "settings_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def bool_option(name: str, help: str) -> Callable[[F], F]:
    """``--name`` / ``--name=false`` / ``--name false``, as Linkerd's boolean flags are written."""
    return click.option(
        name,
        type=click.BOOL,
        default=True,
        is_flag=False,
        flag_value=True,
        show_default=True,
        metavar="[true|false]",
        help=help,
    )


def settings_options(command: F) -> F:
    """``--image-tag`` and ``--set`` for commands that render workloads."""
    command = click.option(
        "--set", "settings", multiple=True, metavar="KEY=VALUE", help="Set a value (repeatable)."
    )(command)
    return click.option(
        "--image-tag",
        help="Tag of the isthmus/isthmus image [default: the one the cluster's control plane "
        "runs, per linkerd-config; this version with --ignore-cluster].",
    )(command)


def open_cluster(where: Any, role: str) -> kube.Cluster:
    """``kube.connect(where)``; ``ClickException`` naming the ``role`` (target, source)."""
    try:
        return kube.connect(where)
    except kube.ClusterError as e:
        raise click.ClickException(f"cannot use the {role} cluster: {e}") from None


def control_plane_values(cluster: kube.Cluster, control_plane_ns: str, role: str) -> Values:
    """The control plane's ``Values`` as its ``linkerd-config`` stores them."""
    try:
        config = cluster.get(kube.CONFIG_MAP, CONFIG_MAP, control_plane_ns)
    except kube.ClusterError as e:
        raise click.ClickException(f"cannot read the {role} cluster's {CONFIG_MAP}: {e}") from None
    if config is None:
        raise click.ClickException(
            f"the {role} cluster ({cluster.server}) has no ConfigMap {control_plane_ns}/"
            f"{CONFIG_MAP}: install the control plane there first (isthmus install), "
            "or pass --linkerd-namespace if it lives elsewhere"
        )
    try:
        tree = yaml.safe_load((config.get("data") or {}).get("values", "")) or {}
        return Values.from_config(tree, strict=False)
    except (yaml.YAMLError, ValueError, TypeError) as e:
        raise click.ClickException(
            f"the {role} cluster's {control_plane_ns}/{CONFIG_MAP} cannot be read: {e}"
        ) from None


def cluster_values(
    control_plane: Values | None,
    *,
    image_tag: str | None = None,
    gateway: bool | None = None,
    settings: Sequence[str] = (),
) -> McValues:
    """The control plane's facts (if known), then the flags, then ``--set``."""
    given: list[str] = []
    if control_plane is not None:
        given += [
            f"clusterDomain={control_plane.cluster_domain}",
            f"identityTrustDomain={control_plane.identity_trust_domain}",
            f"linkerdNamespace={control_plane.control_plane_ns}",
            f"image.name={control_plane.image_name}",
            f"image.version={control_plane.image_tag}",
            f"image.pullPolicy={control_plane.image_pull_policy}",
        ]
    if image_tag is not None:
        given.append(f"image.version={image_tag}")
    if gateway is not None:
        given.append(f"gateway.enabled={str(gateway).lower()}")
    try:
        return McValues().with_settings([*given, *settings])
    except ValueError as e:
        raise click.UsageError(str(e)) from None
