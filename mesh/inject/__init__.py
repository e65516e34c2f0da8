"""Meshing workloads: the proxy injection both ``isthmus inject`` and the webhook perform.

``pod`` holds the one pod mutation (``inject_pod``), ``proxyenv`` the proxy's
environment contract, ``workloads`` the walk over manifests, ``webhook`` the
sans-IO admission logic and ``server`` its HTTPS server. All but ``server``
and ``cli`` are pure.
"""

from mesh.inject.config import InjectConfig
from mesh.inject.pod import InjectError, inject_pod, is_injected
from mesh.inject.webhook import Decision, admit, decide
from mesh.inject.workloads import Outcome, inject_documents

__all__ = [
    "Decision",
    "InjectConfig",
    "InjectError",
    "Outcome",
    "admit",
    "decide",
    "inject_documents",
    "inject_pod",
    "is_injected",
]
