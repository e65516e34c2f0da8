"""harness.kube: kubeconfig credentials and named waits."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest
import yaml
from lightkube.generic_resource import create_namespaced_resource

from harness.kube import WaitTimeout, _tls_from_kubeconfig, manifest_objects, wait_for
from harness.providers.netns.pki import ClusterPKI


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_inline_credentials_load_and_leave_no_files(tmp_path: Path) -> None:
    pki = ClusterPKI(tmp_path / "pki", "east")
    user = pki.issue("admin", "admin", orgs=("system:masters",))
    config = {
        "clusters": [{"name": "c", "cluster": {
            "server": "https://10.0.0.1:6443",
            "certificate-authority-data": _b64(pki.ca.cert)}}],
        "users": [{"name": "u", "user": {
            "client-certificate-data": _b64(user.cert), "client-key-data": _b64(user.key),
            "token": "t0k"}}],
        "contexts": [{"name": "east", "context": {"cluster": "c", "user": "u"}}],
    }  # fmt: skip
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    before = set(Path(tempfile.gettempdir()).glob("isthmus-kube-*"))
    server, tls, headers = _tls_from_kubeconfig(path, "east")
    assert server == "https://10.0.0.1:6443"
    assert headers == {"Authorization": "Bearer t0k"}
    assert tls.cert_store_stats()["x509_ca"] == 1, "expected the inline CA loaded"
    after = set(Path(tempfile.gettempdir()).glob("isthmus-kube-*"))
    assert after == before, f"expected no credential files left behind: {after - before}"


def test_wait_for_names_what_it_waited_for_and_what_it_saw() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for the thing; last seen: nope"):
        wait_for("the thing", lambda: None, timeout=0.05, seen=lambda: "nope", interval=0.01)
    assert wait_for("a value", lambda: 42, timeout=1) == 42


def test_manifest_objects_take_the_namespace_given_unless_they_name_one() -> None:
    create_namespaced_resource("split.smi-spec.io", "v1alpha2", "TrafficSplit", "trafficsplits")
    text = """
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: generic}
spec: {service: a, backends: []}
---
apiVersion: v1
kind: Service
metadata: {name: typed}
---
apiVersion: v1
kind: Service
metadata: {name: own, namespace: elsewhere}
---
apiVersion: v1
kind: Namespace
metadata: {name: cluster-scoped}
"""
    seen = {
        obj.metadata.name: obj.metadata.namespace
        for obj in manifest_objects(text, "ns1")
        if obj.metadata is not None
    }
    expected = {"generic": "ns1", "typed": "ns1", "own": "elsewhere", "cluster-scoped": None}
    assert seen == expected, f"expected namespaces {expected}, saw {seen}"
