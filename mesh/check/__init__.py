"""``isthmus check``: pure checks over a cluster snapshot, fetched by a thin lightkube layer.

``snapshot`` defines what is known and what a result is, ``checks`` and
``certchecks`` judge it (``INSTALL_CHECKS``, ``PRE_CHECKS``, ``run_checks``),
``report`` prints it, ``fetch`` reads a cluster, and ``cli`` ties them together
(retrying while pods start). ``multicluster`` judges a source cluster's links
(``check --multicluster``, ``multicluster check``) from what ``mcfetch`` reads
through the multicluster commands' Kubernetes seam. Only the snapshot types are
imported here, so the CLI loads fast.
"""

from mesh.check.snapshot import Access, ClusterSnapshot, DeploymentState, Result, Status

__all__ = ["Access", "ClusterSnapshot", "DeploymentState", "Result", "Status"]
