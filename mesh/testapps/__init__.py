"""Test workloads: an echo server that says who answered and a load client with a
control API. Both run as ``isthmus-testapp`` in pods (image ``isthmus/testapps``).

This package is a leaf: it knows nothing of the mesh or the harness, only HTTP and TCP.
"""

from mesh.testapps.client import ClientConfig, start_client
from mesh.testapps.lifecycle import HttpListener
from mesh.testapps.loadgen import (
    Record,
    Responder,
    RunResult,
    RunSpec,
    SpecError,
    Summary,
    parse_run_spec,
    percentile,
    schedule,
)
from mesh.testapps.podinfo import PodInfo
from mesh.testapps.runner import execute
from mesh.testapps.server import CLIENT_ID_HEADER, RunningServer, ServerConfig, start_server

__all__ = [
    "CLIENT_ID_HEADER",
    "ClientConfig",
    "HttpListener",
    "PodInfo",
    "Record",
    "Responder",
    "RunResult",
    "RunSpec",
    "RunningServer",
    "ServerConfig",
    "SpecError",
    "Summary",
    "execute",
    "parse_run_spec",
    "percentile",
    "schedule",
    "start_client",
    "start_server",
]
