"""The CRDs a cluster already has: the one read ``install --crds`` and ``uninstall`` make.

One list of ``CustomResourceDefinition`` objects, reduced to what
``mesh.crds.ownership`` decides by (name, labels, annotations). A cluster that
cannot be reached is an error naming the target and the way around it
(``--ignore-cluster``), never a silent guess.
"""

from __future__ import annotations

import click

from mesh.crds.ownership import Existing
from mesh.install.target import KubeTarget, TargetError

__all__ = ["existing_crds"]


def existing_crds(target: KubeTarget) -> dict[str, Existing]:
    """Every CRD in the target cluster by name; ``ClickException`` if it cannot be read."""
    import httpx2
    from lightkube import ApiError
    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

    hint = "(or pass --ignore-cluster to print without looking at the cluster)"
    try:
        client = target.client()
    except TargetError as e:
        raise click.ClickException(f"{e.message} {hint}") from None
    try:
        found: dict[str, Existing] = {}
        for crd in client.list(CustomResourceDefinition):
            meta = crd.metadata
            if meta is None or meta.name is None:
                continue
            found[meta.name] = Existing(meta.name, meta.labels or {}, meta.annotations or {})
        return found
    except (ApiError, httpx2.HTTPError) as e:
        raise click.ClickException(f"cannot list the cluster's CRDs: {e} {hint}") from None
    finally:
        client.close()
