"""Helpers of the viz suite: one meshed app per module, viz commands, their tables.

``viz_app`` (module scope) makes a namespace in every cluster (namespace sameness),
meshes it and starts, in the primary cluster, the test server (Deployment ``server``,
its own service account) and two load clients under service accounts of their own
(``client`` and ``evil``), so their identities differ. Tests drive traffic with the
clients and read it back with the mesh's ``viz`` through the adapter.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from fixtures.mesh import Mesh
from fixtures.workloads import LoadClient
from harness.adapters import MeshAdapter
from harness.adapters.viz import VizAdapter, VizOutput, VizRun
from harness.kube import Kube
from harness.settings import TIMEOUTS
from suites.mesh._support import converge, deploy_server, service_url

HERE = Path(__file__).parent
WINDOW = 10.0
"""The ``--window`` of the suite's stat and authz runs, in seconds."""
WINDOW_OPEN = "first scrape done"
"""What ``viz stat|authz --verbose`` prints on stderr once its window opens."""
TAP_OPEN = "tapping"
"""What ``viz tap --verbose`` prints on stderr once a pod's tap stream is open."""


def viz_of(adapter: MeshAdapter) -> VizAdapter:
    """The adapter's viz verbs (tests citing feature ``viz`` only run when it has them)."""
    return cast(VizAdapter, adapter)


@dataclass
class VizApp:
    mesh: Mesh
    cluster: str
    namespace: str
    client: LoadClient
    evil: LoadClient

    @property
    def kube(self) -> Kube:
        return self.mesh.kube[self.cluster]

    @property
    def url(self) -> str:
        return service_url(self.mesh, self.cluster, self.namespace, "server")

    @property
    def authority(self) -> str:
        return self.url.split("/")[2]

    def identity(self, service_account: str) -> str:
        return self.mesh.identity(self.cluster, self.namespace, service_account)

    def viz(self, *args: str, window: float = 0) -> VizOutput:
        """``viz <args>`` against the app's cluster, namespace flag included."""
        adapter = viz_of(self.mesh.adapter)
        timeout = window + TIMEOUTS.viz_command
        return adapter.viz(
            self.mesh.clusters[self.cluster], *args, "-n", self.namespace, timeout=timeout
        )

    def viz_start(self, *args: str) -> VizRun:
        adapter = viz_of(self.mesh.adapter)
        return adapter.viz_start(self.mesh.clusters[self.cluster], *args, "-n", self.namespace)


def _client(kube: Kube, namespace: str, cluster: str, name: str) -> LoadClient:
    kube.apply(
        (HERE / "viz-client.yaml").read_text(), namespace=namespace, name=name, cluster=cluster
    )
    kube.wait_pod_ready(name, namespace)
    return LoadClient(kube, namespace, name)


@pytest.fixture(scope="module")
def viz_app(mesh: Mesh, kube: dict[str, Kube]) -> Iterator[VizApp]:
    """The module's meshed server and two clients in the primary cluster (see the docstring)."""
    name = f"viz-{secrets.token_hex(3)}"
    created: list[Kube] = []
    try:
        for k in kube.values():
            k.create_namespace(name, labels={"isthmus.io/test": "true"})
            created.append(k)
            mesh.adapter.mesh_namespace(k, name)
        c = mesh.primary
        deploy_server(mesh, name, c, "server", replicas=1)
        app = VizApp(
            mesh,
            c,
            name,
            _client(kube[c], name, c, "client"),
            _client(kube[c], name, c, "evil"),
        )
        converge(app.client, app.url)
        converge(app.evil, app.url)
        yield app
    finally:
        for k in created:
            k.delete_namespace(name, wait=False)
        for k in created:
            k.delete_namespace(name, wait=True)


def rows(table: str) -> list[list[str]]:
    """A viz table split into cells (no cell of the suite's tables holds a space)."""
    return [line.split() for line in table.strip().splitlines()]


def row_named(table: str, name: str, column: int = 0) -> list[str]:
    found = [r for r in rows(table)[1:] if r[column] == name]
    assert len(found) == 1, f"expected one row {name!r} in the viz table; it shows:\n{table}"
    return found[0]


def json_rows(out: VizOutput) -> list[dict[str, Any]]:
    data = json.loads(out.stdout)
    assert isinstance(data, list), f"expected a JSON list from {out.describe()}"
    return data
