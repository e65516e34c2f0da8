"""The ``isthmus`` adapter's viz side: ``isthmus viz ...`` against one cluster's kubeconfig.

Mixed into ``IsthmusAdapter``. ``viz`` runs a verb to completion through the adapter's
``Runner`` (the seam unit tests fake); ``viz_start`` runs one in the background for
suites that act while a ``stat`` window is open (see ``harness.adapters.viz``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.adapters.base import MeshError
from harness.adapters.viz import VizOutput, VizRun

if TYPE_CHECKING:
    from harness.adapters.isthmus import Completed, Runner
    from harness.providers.base import Cluster

__all__ = ["IsthmusViz"]


class IsthmusViz:
    """``isthmus viz <verb>`` with ``--kubeconfig``/``--context`` of the cluster."""

    runner: Runner

    if TYPE_CHECKING:  # provided by IsthmusAdapter

        @property
        def isthmus(self) -> tuple[str, ...]: ...

    def _viz_argv(self, cluster: Cluster, args: tuple[str, ...]) -> list[str]:
        if not args:
            raise MeshError("viz needs a verb (stat, authz, edges, tap, top)")
        verb, *rest = args
        target = ["--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
        return [*self.isthmus, "viz", verb, *target, *rest]

    def viz(self, cluster: Cluster, *args: str, timeout: float) -> VizOutput:
        argv = self._viz_argv(cluster, args)
        done: Completed = self.runner(argv, None, timeout)
        out = VizOutput(tuple(argv), done.stdout, done.stderr)
        if done.returncode != 0:
            raise MeshError(f"[{cluster.name}] viz exited {done.returncode}: {out.describe()}")
        return out

    def viz_start(self, cluster: Cluster, *args: str) -> VizRun:
        return VizRun.start(self._viz_argv(cluster, args))
