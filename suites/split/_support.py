"""Helpers of the split suite: one shared deployment per module, split objects, statistics.

A module's tests share one ``SplitSite`` (module-scoped, built once): a namespace in
both clusters marked for injection, the meshed test server ``server`` in each cluster
(answering with its pod and cluster), the target's exported in gateway mode so the
source has the mirror ``server-target``, and a meshed load client in the source. The
apex clients call is the source's ``server`` Service; a split divides it between
``server`` (local) and ``server-target`` (the mirror of the remote one). Each test
removes the split objects it made, so the next starts from direct routing.

Shares are judged statistically: a two-sided exact binomial test of one backend's
count (two backends), or Pearson's chi-square goodness of fit (more), rejecting at
``ALPHA``; a backend of weight 0 must get no request at all once the change settled.
"""

from __future__ import annotations

import json
import math
import secrets
import string
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.mesh import Mesh
from fixtures.multicluster import Linked
from fixtures.workloads import LoadClient, Workloads
from harness.diagnostics import EXTRA_NAMESPACES
from harness.kube import Kube, wait_for
from harness.reporting import Evidence
from harness.reporting.charts import SPLIT_SHARE, split_share
from harness.settings import TIMEOUTS
from suites.mesh._support import converge, deploy_server
from suites.multicluster._support import mirror

SOURCE, TARGET = "source", "target"
APEX = "server"
LOCAL = "server"
REMOTE = "server-target"
PORT = 8080
MANIFESTS = Path(__file__).parent / "manifests"
#: the significance level of every share test: a correct split fails it 1 time in 1000.
ALPHA = 0.001
#: consecutive requests that must all meet a routing expectation to call it converged.
IN_A_ROW = 10

SPLIT_API = "/apis/split.smi-spec.io/{version}/namespaces/{ns}/trafficsplits"
ROUTE_API = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"


@dataclass(frozen=True)
class SplitSite:
    """The module's shared deployment (see the module docstring)."""

    linked: Linked
    namespace: str
    client: LoadClient

    @property
    def mesh(self) -> Mesh:
        return self.linked.mesh

    @property
    def source(self) -> Kube:
        return self.linked.kube[SOURCE]

    @property
    def url(self) -> str:
        return f"http://{APEX}.{self.namespace}.svc.{self.linked.clusters[SOURCE].domain}:{PORT}/"

    def for_test(self, evidence: Evidence) -> SplitSite:
        return replace(self, client=replace(self.client, evidence=evidence))


def build_site(linked: Linked) -> Iterator[SplitSite]:
    """Create the shared deployment; remove it (both clusters) when the module is done."""
    ns = f"split-{secrets.token_hex(3)}"
    kubes = [linked.kube[SOURCE], linked.kube[TARGET]]
    created: list[Kube] = []
    try:
        for k in kubes:
            k.create_namespace(ns, labels={"isthmus.io/test": "true"})
            created.append(k)
            linked.mesh.adapter.mesh_namespace(k, ns)
        deploy_server(linked.mesh, ns, SOURCE, name=LOCAL)
        deploy_server(linked.mesh, ns, TARGET, name=LOCAL)
        linked.export(TARGET, ns, LOCAL, "true")
        mirror(linked, SOURCE, ns, REMOTE)
        workloads = Workloads(linked.kube, ns)
        client = workloads.client(SOURCE)
        site = SplitSite(linked, ns, client)
        converge(client, site.url)
        yield site
    finally:
        for k in created:
            k.delete_namespace(ns, wait=False)
        for k in created:
            k.delete_namespace(ns, wait=True)


def cover_namespace(request: pytest.FixtureRequest, namespace: str) -> None:
    """Make a failing test's diagnostics bundle cover the shared namespace."""
    extra = request.node.stash.setdefault(EXTRA_NAMESPACES, [])
    if namespace not in extra:
        extra.append(namespace)


# --- split objects -------------------------------------------------------------------


def manifest(file: str, **params: Any) -> dict[str, Any]:
    """The object of ``manifests/<file>`` with its ``$placeholders`` filled."""
    text = string.Template((MANIFESTS / file).read_text()).substitute(params)
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _ok(kube: Kube, what: str, r: Any) -> dict[str, Any]:
    assert r.status_code in (200, 201), f"[{kube.name}] {what}: {r.status_code} {r.text[:500]}"
    data: dict[str, Any] = r.json()
    return data


def create(kube: Kube, api: str, obj: dict[str, Any]) -> dict[str, Any]:
    """POST ``obj`` to the collection ``api``."""
    r = kube.http.post(api, content=json.dumps(obj), headers={"Content-Type": "application/json"})
    return _ok(kube, f"creating {obj['kind']} {obj['metadata']['name']}", r)


def patch(kube: Kube, api: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch the object ``name`` of ``api`` (lists in ``body`` replace whole lists)."""
    r = kube.http.patch(
        f"{api}/{name}",
        content=json.dumps(body),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    return _ok(kube, f"patching {name}", r)


def delete(kube: Kube, api: str, name: str) -> None:
    r = kube.http.delete(f"{api}/{name}")
    assert r.status_code in (200, 202, 404), f"[{kube.name}] deleting {name}: {r.text[:300]}"


def split_api(ns: str, version: str = "v1alpha2") -> str:
    return SPLIT_API.format(version=version, ns=ns)


def route_api(ns: str) -> str:
    return ROUTE_API.format(ns=ns)


def backends(local: Any, remote: Any) -> dict[str, Any]:
    """A TrafficSplit patch setting the two backends' weights."""
    return {
        "spec": {
            "backends": [
                {"service": LOCAL, "weight": local},
                {"service": REMOTE, "weight": remote},
            ]
        }
    }


def events_for(kube: Kube, ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    """The Events in ``ns`` about the ``kind`` object ``name``."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    r = kube.http.get(f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": selector})
    items: list[dict[str, Any]] = _ok(kube, "listing events", r)["items"]
    return items


# --- observing where requests went ---------------------------------------------------


def responder_cluster(record: Mapping[str, Any]) -> str:
    """Who answered one request: the responding cluster, or ``status <code>`` without one."""
    who = record.get("responder") or {}
    if who.get("cluster"):
        return str(who["cluster"])
    return f"status {record.get('status')}"


def tally(result: Mapping[str, Any]) -> Counter[str]:
    return Counter(responder_cluster(r) for r in result["records"])


def routes_to(
    site: SplitSite,
    want: set[str],
    what: str,
    headers: dict[str, str] | None = None,
    path: str = "",
) -> None:
    """Wait until ``IN_A_ROW`` requests in a row are all answered by ``want``
    (``TIMEOUTS.convergence``); ``want`` holds clusters or ``status <code>``."""
    last: list[str] = []
    url = site.url.rstrip("/") + (path or "/")

    def attempt() -> bool | None:
        result = site.client.run(url, IN_A_ROW, concurrency=1, timeout=3, headers=headers)
        seen = tally(result)
        last[:] = [str(dict(seen))]
        return True if set(seen) <= want else None

    wait_for(
        f"[{SOURCE}] {what}: {IN_A_ROW} requests in a row to {url} answered by {sorted(want)}",
        attempt,
        TIMEOUTS.convergence,
        lambda: last[-1] if last else "no answer",
    )


def binomial_pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def binomial_two_sided(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial P-value: the probability of outcomes no likelier than ``k``."""
    if n == 0:
        return 1.0
    observed = binomial_pmf(k, n, p)
    return min(
        1.0,
        math.fsum(
            binomial_pmf(i, n, p)
            for i in range(n + 1)
            if binomial_pmf(i, n, p) <= observed * 1.0000001
        ),
    )


def chi_square_p(observed: Mapping[str, int], expected_shares: Mapping[str, float]) -> float:
    """Pearson's chi-square goodness-of-fit P-value (categories of expected share > 0)."""
    n = sum(observed.values())
    cats = [c for c, s in expected_shares.items() if s > 0]
    stat = math.fsum(
        (observed.get(c, 0) - n * expected_shares[c]) ** 2 / (n * expected_shares[c]) for c in cats
    )
    return chi2_sf(stat, len(cats) - 1)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with ``df`` degrees of freedom (df 1 or even)."""
    if x <= 0:
        return 1.0
    if df == 1:
        return math.erfc(math.sqrt(x / 2))
    if df % 2:
        raise ValueError(f"chi2_sf supports df 1 or even, not {df}")
    term, total = 1.0, 1.0
    for i in range(1, df // 2):
        term *= (x / 2) / i
        total += term
    return math.exp(-x / 2) * total


@dataclass(frozen=True)
class ShareVerdict:
    """A judged step: counts, the P-value and whether the split's weights explain them."""

    counts: dict[str, int]
    expected: dict[str, float]
    p_value: float
    stray: dict[str, int]

    @property
    def holds(self) -> bool:
        return not self.stray and self.p_value >= ALPHA

    def describe(self) -> str:
        return (
            f"counts {self.counts}, expected shares {self.expected}, P={self.p_value:.3g} "
            f"(reject below {ALPHA}), requests to weight-0 backends {self.stray}"
        )


def judge(counts: Mapping[str, int], weights: Mapping[str, float]) -> ShareVerdict:
    """Whether ``counts`` (per backend) are explained by ``weights`` at ``ALPHA``."""
    total_weight = sum(weights.values())
    expected = {b: w / total_weight for b, w in weights.items()}
    stray = {b: n for b, n in counts.items() if expected.get(b, 0) == 0 and n}
    live = {b: s for b, s in expected.items() if s > 0}
    n = sum(counts.get(b, 0) for b in live)
    if len(live) <= 1:
        p_value = 1.0
    elif len(live) == 2:
        first = sorted(live)[0]
        p_value = binomial_two_sided(counts.get(first, 0), n, live[first])
    else:
        p_value = chi_square_p({b: counts.get(b, 0) for b in live}, live)
    return ShareVerdict(dict(counts), expected, p_value, stray)


def record_share(
    evidence: Evidence,
    step: str,
    weights: Mapping[str, float],
    counts: Mapping[str, int],
    verdict: ShareVerdict,
    **extra: Any,
) -> None:
    """Record one step's distribution (drawn as a bar chart in the HTML report)."""
    evidence.record(
        SPLIT_SHARE,
        split_share(
            step,
            weights,
            counts,
            p_value=verdict.p_value,
            alpha=ALPHA,
            stray=verdict.stray,
            **extra,
        ),
    )
