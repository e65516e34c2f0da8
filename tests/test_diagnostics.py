"""Diagnostics bundles, collected from a fake cluster API at our seam (``Kube.http``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness import diagnostics
from harness.diagnostics import Limits, bundle_name, collect
from harness.plugin import ENV_STATE
from harness.providers.base import Cluster
from tests.test_reporting import forget_real_suites

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
NS = "ns1"
POD = {
    "metadata": {"name": "server-0", "uid": "uid-1", "managedFields": [{"noise": True}]},
    "spec": {
        "initContainers": [{"name": "setup"}],
        "containers": [{"name": "app"}, {"name": "proxy"}],
    },
    "status": {"containerStatuses": [{"name": "app", "restartCount": 1}, {"name": "proxy"}]},
}
EVENTS = [
    {"lastTimestamp": "2026-01-01T00:00:09Z", "type": "Warning", "reason": "BackOff",
     "involvedObject": {"kind": "Pod", "name": "server-0"}, "message": "later"},
    {"lastTimestamp": "2026-01-01T00:00:01Z", "type": "Normal", "reason": "Scheduled",
     "involvedObject": {"kind": "Pod", "name": "server-0"}, "message": "earlier"},
]  # fmt: skip
Route = tuple[int, Any]


@dataclass
class FakeApi:
    """Answers the paths in ``routes``; any other request is noted as unexpected."""

    routes: dict[str, Route | Callable[[httpx.Request], Route]]
    unexpected: list[str] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.timeouts.append(request.extensions["timeout"]["read"])
        key = request.url.path
        if request.url.query:
            key += "?" + request.url.query.decode()
        route = self.routes.get(key)
        if route is None:
            self.unexpected.append(key)
            return httpx.Response(418, text="unexpected request")
        status, body = route(request) if callable(route) else route
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)


@dataclass
class FakeKube:
    """Shaped like ``harness.kube.Kube`` where collection looks: ``cluster`` and ``http``."""

    cluster: Cluster
    http: httpx.Client


def fake_kube(api: FakeApi, extra: dict[str, str] | None = None, name: str = "east") -> FakeKube:
    cluster = Cluster(
        name=name, domain=name, trust_domain=name, kubeconfig=Path("/nonexistent"),
        context=name, api_server="https://fake.invalid", extra=extra or {},
    )  # fmt: skip
    http = httpx.Client(base_url="https://fake.invalid", transport=httpx.MockTransport(api))
    return FakeKube(cluster, http)


def _log(container: str, previous: bool = False) -> str:
    tail = "&previous=true" if previous else ""
    return f"/api/v1/namespaces/{NS}/pods/server-0/log?container={container}&tailLines=5000{tail}"


def _routes() -> dict[str, Route | Callable[[httpx.Request], Route]]:
    return {
        f"/api/v1/namespaces/{NS}/pods": (200, {"items": [POD]}),
        f"/api/v1/namespaces/{NS}/events": (200, {"items": EVENTS}),
        f"/api/v1/namespaces/{NS}/services": (200, {"items": [{"metadata": {"name": "svc"}}]}),
        f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices": (403, "forbidden"),
        f"/api/v1/namespaces/{NS}/endpoints": (200, {"items": [{"metadata": {"name": "svc"}}]}),
        f"/apis/multicluster.linkerd.io/v1alpha3/namespaces/{NS}/links": (404, "not served"),
        _log("app"): (200, "app says hello\n"),
        _log("app", previous=True): (200, "app crashed before\n"),
        _log("proxy"): (500, "no kubelet API"),
        _log("setup"): (500, "no kubelet API"),
    }


def test_bundle_holds_objects_events_logs_and_its_own_errors(tmp_path: Path) -> None:
    state = tmp_path / "state"
    logs = state / "east" / "kubelet-east-node0" / "pods" / "uid-1" / "logs" / "proxy"
    logs.mkdir(parents=True)
    (logs / "0.log").write_text("proxy first start\n")
    (logs / "1.log").write_text("proxy second start\n")
    api = FakeApi(_routes())
    kube = fake_kube(api, {"provider": "netns", "state_dir": str(state)})
    dest = tmp_path / "bundle"

    assert collect({"east": kube}, [NS], dest, test_id="t::x", phase="call") == dest

    assert api.unexpected == []
    assert max(api.timeouts) <= diagnostics.LIMITS.call_timeout
    where = dest / "east" / NS
    pods = yaml.safe_load((where / "pods.yaml").read_text())
    assert pods[0]["metadata"] == {"name": "server-0", "uid": "uid-1"}  # managedFields gone
    assert yaml.safe_load((where / "services.yaml").read_text())[0]["metadata"]["name"] == "svc"
    assert yaml.safe_load((where / "endpoints.yaml").read_text())[0]["metadata"]["name"] == "svc"
    assert not (where / "links.yaml").exists()  # not served: no file, no error
    lines = (where / "events.txt").read_text().splitlines()
    assert ["earlier" in lines[0], "later" in lines[1]] == [True, True]
    assert (where / "logs" / "server-0" / "app.log").read_text() == "app says hello\n"
    assert (where / "logs" / "server-0" / "app.previous.log").read_text() == "app crashed before\n"
    proxy = (where / "logs" / "server-0" / "proxy.log").read_text()
    assert proxy.index("proxy first start") < proxy.index("proxy second start")
    errors = (dest / "errors.txt").read_text()
    assert "endpointslices: RuntimeError: GET" in errors
    assert "answered 403" in errors
    assert "logs of server-0/setup: RuntimeError" in errors
    assert "no kubelet log files found" in errors
    readme = (dest / "README.txt").read_text().splitlines()
    assert readme[:2] == ["test: t::x", "failed in: call"]
    assert readme[-1] == "errors: 2 (see errors.txt)"


def test_bundle_holds_links_with_their_status_where_served(tmp_path: Path) -> None:
    link = {"metadata": {"name": "target"}, "status": {"mirrorServices": []}}
    routes = {
        f"/api/v1/namespaces/{NS}/pods": (200, {"items": []}),
        f"/api/v1/namespaces/{NS}/events": (200, {"items": []}),
        f"/api/v1/namespaces/{NS}/services": (200, {"items": []}),
        f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices": (200, {"items": []}),
        f"/api/v1/namespaces/{NS}/endpoints": (200, {"items": []}),
        f"/apis/multicluster.linkerd.io/v1alpha3/namespaces/{NS}/links": (200, {"items": [link]}),
    }
    api = FakeApi(routes)  # type: ignore[arg-type]
    dest = tmp_path / "bundle"
    collect({"east": fake_kube(api)}, [NS], dest, test_id="t::x", phase="call")
    assert api.unexpected == []
    links = yaml.safe_load((dest / "east" / NS / "links.yaml").read_text())
    assert links == [link]
    assert not (dest / "errors.txt").exists()


def test_spent_budget_skips_calls_and_says_so(tmp_path: Path) -> None:
    api = FakeApi(_routes())
    collect({"east": fake_kube(api)}, [NS], tmp_path / "b", test_id="t", phase="setup",
            limits=Limits(budget=0))  # fmt: skip
    assert api.timeouts == []
    assert "time budget of 0s spent" in (tmp_path / "b" / "errors.txt").read_text()


def test_transport_errors_and_unwritable_destinations_never_raise(tmp_path: Path) -> None:
    def hang(request: httpx.Request) -> Route:
        raise httpx.ReadTimeout("timed out", request=request)

    api = FakeApi({f"/api/v1/namespaces/{NS}/pods": hang})
    collect({"east": fake_kube(api)}, [NS], tmp_path / "b", test_id="t", phase="call")
    assert "pods: ReadTimeout: timed out" in (tmp_path / "b" / "errors.txt").read_text()

    blocker = tmp_path / "file"
    blocker.write_text("")
    assert collect({"east": fake_kube(api)}, [NS], blocker / "b", test_id="t", phase="call")


def test_bundle_names_are_safe_and_distinct() -> None:
    a = bundle_name("suites/mesh/test_x.py::test_y[a/b]")
    b = bundle_name("suites/mesh/test_x.py::test_y[a:b]")
    assert a != b
    assert a.startswith("suites_mesh_test_x.py_test_y_a_b-")
    assert "/" not in a
    assert len(bundle_name("x" * 500)) < 120


CONFTEST = f"""
import httpx
import pytest
from pathlib import Path
from harness.providers.base import Cluster

PODS = {json.dumps({"items": [{"metadata": {"name": "p", "uid": "u"},
                              "spec": {"containers": [{"name": "c"}]}}]})}


def handler(request):
    path = request.url.path
    if path.endswith("/pods"):
        return httpx.Response(200, json=PODS)
    if path.endswith("/log"):
        return httpx.Response(200, text="container log line")
    return httpx.Response(200, json={{"items": []}})


@pytest.fixture(scope="session")
def kube():
    cluster = Cluster("east", "east", "east", Path("/nonexistent"), "east", "https://x.invalid")
    http = httpx.Client(base_url="https://x.invalid", transport=httpx.MockTransport(handler))
    yield {{"east": type("K", (), {{"cluster": cluster, "http": http}})()}}
    http.close()


@pytest.fixture
def namespace(kube):
    return "{NS}"


@pytest.fixture
def broken(namespace):
    raise RuntimeError("deploying failed")
"""  # fmt: skip

SUITE = """
def test_fails(kube, namespace):
    assert False, "mirror never appeared"

def test_setup_fails(broken):
    pass

def test_passes(kube, namespace):
    pass

def test_fails_without_namespace(kube):
    assert False
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_failed_tests_with_a_namespace_get_a_linked_bundle(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    monkeypatch.setenv(ENV_STATE, str(pytester.path / "state"))
    forget_real_suites(monkeypatch)
    pytester.makeini(f"[pytest]\npythonpath = {REPO}\nfilterwarnings = error\n"
                     "asyncio_default_fixture_loop_scope = function\n")  # fmt: skip
    pytester.makeconftest(CONFTEST)
    (pytester.mkpydir("suites") / "test_diag.py").write_text(SUITE)
    result = pytester.runpytest("--report-dir", "out", "-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=1, failed=2, errors=1)

    out = pytester.path / "out"
    bundles = sorted(p.name for p in (out / "diagnostics").iterdir())
    assert bundles == sorted(
        bundle_name(f"suites/test_diag.py::{t}") for t in ("test_fails", "test_setup_fails")
    )
    fails = out / "diagnostics" / bundle_name("suites/test_diag.py::test_fails")
    assert (fails / "east" / NS / "logs" / "p" / "c.log").read_text() == "container log line"
    assert "failed in: call" in (fails / "README.txt").read_text()
    setup = out / "diagnostics" / bundle_name("suites/test_diag.py::test_setup_fails")
    assert "failed in: setup" in (setup / "README.txt").read_text()

    result.stdout.fnmatch_lines([f"*diagnostics bundle: {fails}*"])
    document = yaml.safe_load((out / "conformance.yaml").read_text())
    messages = {t["shortName"]: t["message"] for p in document["profiles"] for t in p["tests"]}
    assert messages["test_fails"].endswith(f"(diagnostics: diagnostics/{fails.name})")
    assert messages["test_setup_fails"].startswith("error in setup: RuntimeError: deploying")
    assert f'href="diagnostics/{fails.name}/"' in (out / "report.html").read_text()
    props = [p.get("value") for p in ET.parse(out / "junit.xml").iter("property")]
    assert str(fails) in props
