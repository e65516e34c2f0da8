"""``isthmus install`` and ``isthmus uninstall``: manifests on stdout, for kubectl.

``install --crds`` prints the CRDs, ``install`` the control plane, ``uninstall``
references to both for ``kubectl delete -f -``. Messages for people go to
stderr so stdout can be piped to kubectl.

Only the CRD decisions read the cluster (``--context``/``--kubeconfig``, or
``--ignore-cluster`` not to): ``install --crds`` leaves alone another owner's
CRD unless it is a Gateway API CRD older than ours, and ``uninstall`` names
only the CRDs the mesh created, saying which it leaves (``mesh.crds.ownership``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from mesh.crds.ownership import Action, plan_deletes, plan_install
from mesh.identity import PemFile
from mesh.install.controlplane import WEBHOOK_SERVICE
from mesh.install.credentials import (
    IdentityError,
    IdentityMaterial,
    create_webhook_cert,
    generate_identity,
    load_identity,
)
from mesh.install.existing import existing_crds
from mesh.install.render import dump_all, render_crds, render_install, uninstall_objects
from mesh.install.target import kube_options, target_from
from mesh.install.values import Values

__all__ = ["build_values", "install", "uninstall"]

_IGNORE_CLUSTER = click.option(
    "--ignore-cluster",
    is_flag=True,
    help="Do not read the cluster: install --crds prints every CRD, uninstall names none.",
)

_pem = click.Path(exists=True, dir_okay=False, path_type=Path)
_IDENTITY_FLAGS = (
    "--identity-trust-anchors-file",
    "--identity-issuer-certificate-file",
    "--identity-issuer-key-file",
)


def build_values(
    *,
    cluster_domain: str | None = None,
    trust_domain: str | None = None,
    control_plane_ns: str | None = None,
    image_tag: str | None = None,
    settings: Sequence[str] = (),
) -> Values:
    """Defaults, then the flags given, then ``--set``; ``click.UsageError`` if invalid."""
    flags = {
        "clusterDomain": cluster_domain,
        "identityTrustDomain": trust_domain,
        "controlPlaneNamespace": control_plane_ns,
        "image.version": image_tag,
    }
    given = [f"{key}={value}" for key, value in flags.items() if value is not None]
    try:
        return Values().with_settings([*given, *settings])
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _identity(
    values: Values, anchors: Path | None, cert: Path | None, key: Path | None, now: datetime
) -> IdentityMaterial:
    files = (anchors, cert, key)
    if not any(files):
        material = generate_identity(values.identity_trust_domain, values.control_plane_ns, now=now)
        click.echo(
            f"isthmus: generated a new trust anchor and issuer for trust domain "
            f"{values.identity_trust_domain}. Clusters that will be linked must share one "
            "trust anchor: create it with `isthmus identity create-anchor`, an issuer per "
            "cluster with `isthmus identity create-issuer`, and pass "
            f"{', '.join(_IDENTITY_FLAGS)}.",
            err=True,
        )
        return material
    if not all(files):
        missing = [flag for flag, f in zip(_IDENTITY_FLAGS, files, strict=True) if f is None]
        raise click.UsageError(
            f"{', '.join(_IDENTITY_FLAGS)} go together; missing {', '.join(missing)}"
        )
    assert anchors is not None
    assert cert is not None
    assert key is not None
    pems = [PemFile(str(p), p.read_bytes()) for p in (anchors, cert, key)]
    try:
        material = load_identity(
            *pems,
            trust_domain=values.identity_trust_domain,
            control_plane_ns=values.control_plane_ns,
            now=now,
        )
    except IdentityError as e:
        raise click.ClickException(
            "the identity files cannot serve:\n" + "\n".join(f"  {p}" for p in e.problems)
        ) from None
    for note in material.notes:
        click.echo(f"isthmus: note: {note}", err=True)
    return material


@click.command("install")
@click.option(
    "--crds", is_flag=True, help="Print only the CustomResourceDefinitions (apply first)."
)
@click.option("--identity-trust-anchors-file", "anchors", type=_pem, help="PEM trust anchors.")
@click.option("--identity-issuer-certificate-file", "issuer_cert", type=_pem, help="PEM issuer.")
@click.option("--identity-issuer-key-file", "issuer_key", type=_pem, help="PEM issuer key.")
@click.option("--cluster-domain", help="The cluster's DNS domain [default: cluster.local].")
@click.option(
    "--identity-trust-domain",
    "trust_domain",
    help="Identities end with this [default: cluster domain].",
)
@click.option("--control-plane-ns", help="Namespace of the control plane [default: linkerd].")
@click.option("--image-tag", help="Tag of the isthmus/isthmus image [default: this version].")
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", help="Set a value (repeatable)."
)
@_IGNORE_CLUSTER
@kube_options
@click.pass_context
def install(
    ctx: click.Context,
    crds: bool,
    anchors: Path | None,
    issuer_cert: Path | None,
    issuer_key: Path | None,
    cluster_domain: str | None,
    trust_domain: str | None,
    control_plane_ns: str | None,
    image_tag: str | None,
    settings: tuple[str, ...],
    ignore_cluster: bool,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Print the control plane's manifests (or, with --crds, its CRDs) for kubectl apply.

    \b
      isthmus install --crds | kubectl apply -f -
      isthmus install --identity-trust-anchors-file ca.crt \\
        --identity-issuer-certificate-file issuer.crt \\
        --identity-issuer-key-file issuer.key | kubectl apply -f -

    Without the identity files a new trust anchor and issuer are generated.
    With --crds the cluster is read (unless --ignore-cluster) so that CRDs of
    another owner are left alone, or only raised to a newer upstream Gateway API.
    """
    values = build_values(
        cluster_domain=cluster_domain,
        trust_domain=trust_domain,
        control_plane_ns=control_plane_ns,
        image_tag=image_tag,
        settings=settings,
    )
    if crds:
        existing = None if ignore_cluster else existing_crds(target_from(ctx, context, kubeconfig))
        docs, decisions = plan_install(render_crds(values), existing, values.control_plane_ns)
        for d in decisions:
            if d.action in (Action.LEAVE, Action.UPGRADE_FOREIGN):
                click.echo(f"isthmus: CRD {d.name}: {d.reason}", err=True)
        click.echo(dump_all(docs), nl=False)
        return
    now = datetime.now(UTC)
    identity = _identity(values, anchors, issuer_cert, issuer_key, now)
    webhook = create_webhook_cert(
        WEBHOOK_SERVICE, values.control_plane_ns, values.cluster_domain, now=now
    )
    click.echo(dump_all(render_install(values, identity, webhook)), nl=False)


@click.command("uninstall")
@click.option("--control-plane-ns", help="Namespace of the control plane [default: linkerd].")
@_IGNORE_CLUSTER
@kube_options
@click.pass_context
def uninstall(
    ctx: click.Context,
    control_plane_ns: str | None,
    ignore_cluster: bool,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Print references to everything install created, CRDs included, for kubectl delete.

    \b
      isthmus uninstall | kubectl delete -f -

    Only CRDs the mesh created are named (deleting one deletes every object of
    its kind); each CRD left in place is reported on stderr. With
    --ignore-cluster no CRD is named.
    """
    values = build_values(control_plane_ns=control_plane_ns)
    existing = None if ignore_cluster else existing_crds(target_from(ctx, context, kubeconfig))
    names = [doc["metadata"]["name"] for doc in render_crds(values)]
    deletes, notes = plan_deletes(names, existing, values.control_plane_ns)
    for note in notes:
        click.echo(f"isthmus: {note}", err=True)
    click.echo(dump_all(uninstall_objects(values, crds=deletes)), nl=False)
