"""What multicluster suites ask of a mesh: install the extension, link, export, inspect.

The intents follow Linkerd's multicluster model, which is also the mesh-neutral API the
suites assert (``mirror.linkerd.io/exported``, ``Link``, ``<svc>-<cluster>`` mirrors):

- ``multicluster_install(cluster)``: the extension (gateway, remote-access account) on a
  cluster, returning once its gateway is ready;
- ``link(source, target, name)``: the source mirrors the target's exported services
  under ``name`` (credentials, Link, a mirror controller), once that controller is ready;
- ``unlink`` / ``gateways`` / ``check_multicluster`` / ``mirror_metrics``;
- ``export(kube, ns, svc, mode)``: label a target Service for mirroring in ``mode``.

Rules: results are plain data; failures raise ``MeshError`` naming the command and its
output. Parsers of command output live here so they are unit-tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from harness.adapters.base import CheckResult, MeshError, ObjectRef

if TYPE_CHECKING:
    from harness.kube import Kube
    from harness.providers.base import Cluster

__all__ = [
    "EXPORT_LABEL",
    "EXPORT_MODES",
    "GatewayRow",
    "LinkRecord",
    "MulticlusterAdapter",
    "link_conditions",
    "link_status_entries",
    "parse_gateways",
]

#: the label that exports a Service (Linkerd's), and the values it takes.
EXPORT_LABEL = "mirror.linkerd.io/exported"
EXPORT_MODES = ("true", "remote-discovery")
GATEWAYS_HEADER = ("CLUSTER", "ALIVE", "NUM_SVC", "LATENCY")


@dataclass(frozen=True)
class GatewayRow:
    """One row of ``multicluster gateways``: a linked cluster and its gateway's health."""

    cluster: str
    alive: str
    num_svc: int
    latency: str

    @property
    def is_alive(self) -> bool:
        return self.alive.lower() == "true"


@dataclass(frozen=True)
class LinkRecord:
    """A link made by the adapter: who mirrors whom, under which name, what was applied."""

    source: str
    target: str
    name: str
    objects: tuple[ObjectRef, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "name": self.name}


def parse_gateways(text: str) -> list[GatewayRow]:
    """The rows of ``multicluster gateways`` output; ``MeshError`` if the header is wrong."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise MeshError("`multicluster gateways` printed nothing (expected a header line)")
    header = tuple(lines[0].split())
    if header != GATEWAYS_HEADER:
        raise MeshError(
            f"`multicluster gateways` header is {' '.join(header)!r}; "
            f"expected {' '.join(GATEWAYS_HEADER)!r}"
        )
    rows = []
    for line in lines[1:]:
        cells = line.split()
        if len(cells) != len(GATEWAYS_HEADER):
            raise MeshError(f"`multicluster gateways` row {line!r} has {len(cells)} columns")
        try:
            count = int(cells[2])
        except ValueError:
            raise MeshError(
                f"`multicluster gateways` NUM_SVC {cells[2]!r} is not a number"
            ) from None
        rows.append(GatewayRow(cells[0], cells[1], count, cells[3]))
    return rows


def link_conditions(
    link: Mapping[str, Any], names: Sequence[str], namespace: str
) -> list[dict[str, Any]]:
    """The status conditions a Link's status holds for one Service (remote or mirror name)."""
    return [
        c
        for entry in link_status_entries(link, names, namespace)
        for c in entry["conditions"]
        if isinstance(c, dict)
    ]


def link_status_entries(
    link: Mapping[str, Any], names: Sequence[str], namespace: str
) -> list[dict[str, Any]]:
    """The entries of a Link's status about one Service (remote or mirror name).

    The status is searched for entries carrying ``conditions`` and a reference (``*Ref``)
    to one of ``names`` in ``namespace``, whatever list they sit in, so the check does
    not depend on one version's field names.
    """
    found: list[dict[str, Any]] = []

    def refers(entry: Mapping[str, Any]) -> bool:
        return any(
            key.lower().endswith("ref")
            and isinstance(ref, Mapping)
            and ref.get("name") in names
            and ref.get("namespace") in (None, namespace)
            for key, ref in entry.items()
        )

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("conditions"), list) and refers(node):
                found.append(dict(node))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(link.get("status") or {})
    return found


class MulticlusterAdapter(Protocol):
    """The multicluster intents of a mesh adapter (``Feature.MULTICLUSTER*``)."""

    multicluster_namespace: str

    def multicluster_install(self, cluster: Cluster) -> None:
        """Install the multicluster extension on ``cluster``; return once its gateway is up."""
        ...

    def multicluster_uninstall_objects(self, cluster: Cluster) -> list[ObjectRef]:
        """What ``multicluster uninstall`` would remove (without removing it)."""
        ...

    def multicluster_uninstall(self, cluster: Cluster) -> None:
        """Remove the extension from ``cluster`` (after its links were removed)."""
        ...

    def multicluster_installed_objects(self, cluster: Cluster) -> list[ObjectRef]:
        """What ``multicluster_install`` applied to ``cluster``."""
        ...

    def link(
        self,
        source: Cluster,
        target: Cluster,
        name: str | None = None,
        extra_args: Sequence[str] = (),
        edit: Any = None,
        wait: bool = True,
    ) -> LinkRecord:
        """Make ``source`` mirror ``target`` as ``name`` (default: the target's name).

        ``extra_args`` go to the link command; ``edit`` (a callable taking and returning
        the list of rendered objects) may change what is applied. Returns once the link's
        mirror controller is ready (unless ``wait`` is false).
        """
        ...

    def link_render(
        self, target: Cluster, name: str, extra_args: Sequence[str] = ()
    ) -> tuple[int, str, str]:
        """Run the link command against ``target``: exit code, stdout, stderr (no apply)."""
        ...

    def unlink(self, source: Cluster, name: str) -> None:
        """Remove the link ``name`` from ``source`` (mirrors, credentials, RBAC, controller)."""
        ...

    def gateways(self, source: Cluster) -> list[GatewayRow]: ...

    def check_multicluster(self, cluster: Cluster, wait: float = 0) -> CheckResult: ...

    def mirror_metrics(self, kube: Kube, link: str) -> str:
        """The Prometheus text of the mirror controller of ``link`` in ``kube``'s cluster."""
        ...

    def export(self, kube: Kube, namespace: str, service: str, mode: str | None) -> None:
        """Export ``service`` in ``mode`` (``true`` / ``remote-discovery``), or unexport."""
        ...
