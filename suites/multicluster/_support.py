"""Helpers of the multicluster suite: exported services, mirrors, links made per test.

Everything waits by convergence (``eventually``: a check polled until it holds, within
a named timeout), never by sleeping; the one deliberate observation window
(``stays``) polls a condition that must hold throughout it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from lightkube.core.exceptions import ApiError

from fixtures.multicluster import MC_NAMESPACE, Linked
from fixtures.workloads import MANIFESTS
from harness.adapters import MeshError
from harness.adapters.multicluster import EXPORT_LABEL, LinkRecord
from harness.kube import Kube, wait_for
from harness.settings import TIMEOUTS

T = TypeVar("T")

MIRRORED = "mirror.linkerd.io/mirrored-service"
CLUSTER_NAME = "mirror.linkerd.io/cluster-name"
FQ_NAME = "mirror.linkerd.io/remote-svc-fq-name"
REMOTE_RV = "mirror.linkerd.io/remote-resource-version"
GATEWAY_IDENTITY = "mirror.linkerd.io/remote-gateway-identity"
GATEWAY = "linkerd-gateway"
#: seconds a "nothing happens" assertion watches (polling) before it holds.
QUIET_WINDOW = 10.0


def eventually(what: str, check: Callable[[], T | None], timeout: float | None = None) -> T:
    """``check()`` once it returns something other than None or False; an
    ``AssertionError`` it raises is remembered and shown if time runs out."""
    last: list[str] = []

    def attempt() -> T | None:
        try:
            value = check()
        except (AssertionError, MeshError) as e:
            last[:] = [str(e)]
            return None
        return None if value is False else value

    return wait_for(
        what,
        attempt,
        TIMEOUTS.mirror_sync if timeout is None else timeout,
        lambda: last[-1] if last else "nothing yet",
    )


def stays(what: str, check: Callable[[], bool], window: float = QUIET_WINDOW) -> None:
    """Assert ``check()`` holds on every poll for ``window`` seconds."""
    end = time.monotonic() + window
    polls = 0
    while True:
        assert check(), f"{what} stopped holding after {polls} polls"
        polls += 1
        if time.monotonic() >= end:
            return
        time.sleep(0.5)


def get(kube: Kube, path: str) -> dict[str, Any] | None:
    """GET a raw API path as JSON; None on 404."""
    r = kube.http.get(path)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, f"[{kube.name}] GET {path} answered {r.status_code}: {r.text}"
    data: dict[str, Any] = r.json()
    return data


def service(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return get(kube, f"/api/v1/namespaces/{namespace}/services/{name}")


def endpoints(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return get(kube, f"/api/v1/namespaces/{namespace}/endpoints/{name}")


def mirror(linked: Linked, cluster: str, namespace: str, name: str) -> dict[str, Any]:
    """The mirror Service ``name`` in ``cluster`` once it exists."""
    return eventually(
        f"[{cluster}] mirror Service {namespace}/{name}",
        lambda: service(linked.kube[cluster], namespace, name),
    )


def gone(linked: Linked, cluster: str, namespace: str, name: str) -> None:
    """Wait until neither the Service nor the Endpoints ``name`` exist in ``cluster``."""
    k = linked.kube[cluster]

    def check() -> bool:
        svc, eps = service(k, namespace, name), endpoints(k, namespace, name)
        left = [kind for kind, obj in (("Service", svc), ("Endpoints", eps)) if obj is not None]
        assert not left, f"still present: {', '.join(left)}"
        return True

    eventually(f"[{cluster}] mirror {namespace}/{name} and its Endpoints deleted", check)


def export_service(
    linked: Linked,
    cluster: str,
    namespace: str,
    name: str,
    app: str | None = None,
    key: str = EXPORT_LABEL,
    value: str = "true",
) -> dict[str, Any]:
    """Create the suite's exportable Service (``mc-exported-service.yaml``) labelled
    ``key=value``; return it as the API has it."""
    k = linked.kube[cluster]
    k.apply(
        (MANIFESTS / "mc-exported-service.yaml").read_text(),
        namespace=namespace,
        name=name,
        app=app or name,
        export_key=key,
        export_value=value,
    )
    found = service(k, namespace, name)
    assert found is not None
    return found


def delete_service(kube: Kube, namespace: str, name: str) -> None:
    from lightkube.resources.core_v1 import Service

    try:
        kube.client.delete(Service, name, namespace=namespace)
    except ApiError as e:
        if e.status.code != 404:
            raise


def gateway_addresses(linked: Linked, cluster: str) -> list[str]:
    """The load-balancer addresses of ``cluster``'s gateway Service, sorted."""
    svc = service(linked.kube[cluster], MC_NAMESPACE, GATEWAY)
    assert svc is not None, f"[{cluster}] no Service {MC_NAMESPACE}/{GATEWAY}"
    ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    return sorted(str(i.get("ip") or i.get("hostname")) for i in ingress)


def gateway_pod(linked: Linked, cluster: str) -> str:
    pods = linked.kube[cluster].pods(MC_NAMESPACE, {"app": GATEWAY})
    if not pods:
        pods = [
            p
            for p in linked.kube[cluster].pods(MC_NAMESPACE)
            if p.metadata and p.metadata.name and p.metadata.name.startswith(GATEWAY)
        ]
    assert pods, f"[{cluster}] no gateway pod in {MC_NAMESPACE}"
    assert pods[0].metadata is not None
    return str(pods[0].metadata.name)


def mirrors_of(linked: Linked, cluster: str, link: str) -> list[dict[str, Any]]:
    """Every mirror Service of ``link`` in ``cluster`` (all namespaces)."""
    data = get(
        linked.kube[cluster],
        f"/api/v1/services?labelSelector={CLUSTER_NAME}%3D{link},{MIRRORED}%3Dtrue",
    )
    assert data is not None
    items: list[dict[str, Any]] = data["items"]
    return items


def subsets(eps: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = eps.get("subsets") or []
    return found


def addresses(eps: dict[str, Any], key: str = "addresses") -> list[str]:
    return sorted(a["ip"] for s in subsets(eps) for a in s.get(key) or [])


def private_name(prefix: str) -> str:
    """A link name of this test alone (a DNS label)."""
    return f"{prefix}-{secrets.token_hex(2)}"


@contextmanager
def private_link(
    linked: Linked,
    name: str,
    selector: str | None,
    extra_args: tuple[str, ...] = (),
    edit: Any = None,
    wait: bool = True,
    source: str = "source",
    target: str = "target",
) -> Iterator[LinkRecord]:
    """A link of this test alone, ``source`` mirroring ``target`` as ``name``, selecting
    Services by ``selector``; unlinked afterwards whatever happened."""
    args = (*((f"--selector={selector}",) if selector else ()), *extra_args)
    record = None
    try:
        record = linked.adapter.link(
            linked.clusters[source], linked.clusters[target], name, args, edit=edit, wait=wait
        )
        yield record
    finally:
        try:
            linked.adapter.unlink(linked.clusters[source], name)
        except MeshError as e:
            # nothing left to unlink (the test unlinked, or linking failed early) is fine
            if record is not None and "nothing of a link" not in str(e):
                raise


LINK_LABEL = "isthmus.io/link"
"""The label a test's private link selects its Services by (value: the link's name)."""


def link_path(name: str) -> str:
    return f"/apis/multicluster.linkerd.io/v1alpha3/namespaces/{MC_NAMESPACE}/links/{name}"


def patch_link(kube: Kube, name: str, patch: dict[str, Any]) -> None:
    import json

    r = kube.http.patch(
        link_path(name),
        content=json.dumps(patch),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, f"[{kube.name}] patching Link {name}: {r.status_code} {r.text}"


def delete_link(kube: Kube, name: str) -> None:
    r = kube.http.delete(link_path(name))
    assert r.status_code in (200, 202, 404), f"[{kube.name}] deleting Link {name}: {r.text}"


def controller_pods(linked: Linked, cluster: str, link: str) -> list[str]:
    pods = linked.kube[cluster].pods(
        MC_NAMESPACE, {"component": "linkerd-service-mirror", CLUSTER_NAME: link}
    )
    return [str(p.metadata.name) for p in pods if p.metadata is not None]


def scale_controller(linked: Linked, cluster: str, link: str, replicas: int) -> None:
    """Scale ``link``'s mirror controller; wait until its pods are gone or it is ready."""
    from lightkube.resources.apps_v1 import Deployment

    k = linked.kube[cluster]
    name = f"linkerd-service-mirror-{link}"
    k.client.patch(Deployment, name, {"spec": {"replicas": replicas}}, namespace=MC_NAMESPACE)
    if replicas:
        k.wait_deployment_ready(name, MC_NAMESPACE, timeout=TIMEOUTS.link_ready)
        return

    def stopped() -> bool:
        left = controller_pods(linked, cluster, link)
        assert not left, f"pods left: {left}"
        return True

    eventually(f"[{cluster}] mirror controller of {link} stopped", stopped, TIMEOUTS.pod_deleted)
