"""Volume contents and container mounts, table-driven from pod specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.providers.netns.kubelet.envvars import MissingReference
from harness.providers.netns.kubelet.kobjects import Container, Pod, Volume
from harness.providers.netns.kubelet.launch import Mount
from harness.providers.netns.kubelet.volumeplan import (
    DEFAULT_TOKEN_SECONDS,
    FileEntry,
    TokenSource,
    VolumeInputs,
    VolumeKind,
    container_mounts,
    plan_volume,
    token_sources,
    volume_objects,
)

POD: Pod = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "a"}},
    "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]},
}
INPUTS = VolumeInputs(
    configmaps={
        "cfg": {"a.conf": b"A", "b.conf": b"B"},
        "kube-root-ca.crt": {"ca.crt": b"CA"},
        "gone": None,
    },
    secrets={"tls": {"tls.crt": b"CRT", "tls.key": b"KEY"}, "gone": None},
    tokens={("", DEFAULT_TOKEN_SECONDS): "tok-default", ("identity.l5d.io", 86400): "tok-id"},
    pod_ip="10.42.0.9",
)

SA_VOLUME: Volume = {
    "name": "kube-api-access",
    "projected": {
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": DEFAULT_TOKEN_SECONDS, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                    ]
                }
            },
        ],
    },
}


@pytest.mark.parametrize(
    ("volume", "files"),
    [
        pytest.param(
            {"name": "v", "configMap": {"name": "cfg"}},
            {"a.conf": FileEntry(b"A"), "b.conf": FileEntry(b"B")},
            id="configmap-all",
        ),
        pytest.param(
            {
                "name": "v",
                "configMap": {
                    "name": "cfg",
                    "defaultMode": 0o400,
                    "items": [
                        {"key": "a.conf", "path": "sub/a.conf"},
                        {"key": "b.conf", "path": "b", "mode": 0o600},
                    ],
                },
            },
            {"sub/a.conf": FileEntry(b"A", 0o400), "b": FileEntry(b"B", 0o600)},
            id="configmap-items",
        ),
        pytest.param(
            {"name": "v", "configMap": {"name": "gone", "optional": True}},
            {},
            id="configmap-optional-missing",
        ),
        pytest.param(
            {
                "name": "v",
                "secret": {"secretName": "tls", "items": [{"key": "tls.crt", "path": "crt"}]},
            },
            {"crt": FileEntry(b"CRT")},
            id="secret-items",
        ),
        pytest.param(
            {
                "name": "v",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}},
                        {
                            "path": "mem",
                            "resourceFieldRef": {
                                "containerName": "c",
                                "resource": "limits.memory",
                                "divisor": "1Mi",
                            },
                        },
                    ]
                },
            },
            {
                "labels": FileEntry(b'app="a"'),
                "ip": FileEntry(b"10.42.0.9"),
                "mem": FileEntry(b"64"),
            },
            id="downward",
        ),
        pytest.param(
            SA_VOLUME,
            {
                "token": FileEntry(b"tok-default"),
                "ca.crt": FileEntry(b"CA"),
                "namespace": FileEntry(b"ns"),
            },
            id="projected-sa",
        ),
        pytest.param(
            {
                "name": "v",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": "identity.l5d.io",
                                "expirationSeconds": 86400,
                                "path": "token",
                            }
                        }
                    ]
                },
            },
            {"token": FileEntry(b"tok-id")},
            id="projected-audience",
        ),
    ],
)
def test_plan_files(volume: Volume, files: dict[str, FileEntry]) -> None:
    plan = plan_volume(POD, volume, INPUTS)
    assert plan.kind is VolumeKind.FILES
    assert plan.files == files


@pytest.mark.parametrize(
    ("volume", "error"),
    [
        ({"name": "v", "configMap": {"name": "gone"}}, 'configmap "gone" not found'),
        ({"name": "v", "secret": {"secretName": "gone"}}, 'secret "gone" not found'),
        (
            {"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}},
            "couldn't find key zz in configmap ns/cfg",
        ),
        (
            {"name": "v", "projected": {"sources": [{"serviceAccountToken": {"audience": "new"}}]}},
            "no service account token",
        ),
        ({"name": "v", "nfs": {}}, "source this kubelet does not support"),
    ],
)
def test_missing_sources_are_errors(volume: Volume, error: str) -> None:
    with pytest.raises(MissingReference, match=error):
        plan_volume(POD, volume, INPUTS)


def test_empty_dir_and_host_path() -> None:
    assert plan_volume(POD, {"name": "e", "emptyDir": {}}, INPUTS).kind is VolumeKind.EMPTY_DIR
    plan = plan_volume(POD, {"name": "h", "hostPath": {"path": "/opt/x"}}, INPUTS)
    assert (plan.kind, plan.host_path) == (VolumeKind.HOST_PATH, "/opt/x")


def test_token_sources_default_expiry_and_path() -> None:
    vol: Volume = {"name": "v", "projected": {"sources": [{"serviceAccountToken": {}}]}}
    assert token_sources(vol) == [TokenSource("", DEFAULT_TOKEN_SECONDS, "token")]
    assert token_sources({"name": "e", "emptyDir": {}}) == []


def test_volume_objects_lists_every_source() -> None:
    pod: Pod = {
        "spec": {
            "volumes": [
                SA_VOLUME,
                {"name": "a", "configMap": {"name": "cfg"}},
                {"name": "b", "secret": {"secretName": "tls"}},
                {"name": "c", "projected": {"sources": [{"secret": {"name": "s2"}}]}},
            ]
        }
    }
    assert volume_objects(pod) == ({"kube-root-ca.crt", "cfg"}, {"tls", "s2"})


def test_container_mounts_subpaths_and_forced_read_only() -> None:
    c: Container = {
        "name": "c",
        "volumeMounts": [
            {
                "name": "kube-api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            },
            {"name": "cfg", "mountPath": "/etc/app/a.conf", "subPath": "a.conf"},
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/logs", "subPathExpr": "$(POD)/logs", "readOnly": True},
        ],
    }
    mounts = container_mounts(
        POD,
        c,
        lambda v: Path("/state/volumes") / v,
        lambda p: p.name == "a.conf",
        {"POD": "p"},
        always_readonly={"kube-api-access", "cfg"},
    )
    assert mounts == [
        Mount(
            "/state/volumes/kube-api-access",
            "/var/run/secrets/kubernetes.io/serviceaccount",
            readonly=True,
        ),
        Mount("/state/volumes/cfg/a.conf", "/etc/app/a.conf", readonly=True, kind="file"),
        Mount("/state/volumes/data", "/data", readonly=False),
        Mount("/state/volumes/data/p/logs", "/logs", readonly=True),
    ]


@pytest.mark.parametrize("sub", ["../escape", "/abs"])
def test_sub_paths_cannot_escape_the_volume(sub: str) -> None:
    c: Container = {"name": "c", "volumeMounts": [{"name": "d", "mountPath": "/d", "subPath": sub}]}
    with pytest.raises(MissingReference, match="invalid subPath"):
        container_mounts(POD, c, lambda v: Path("/s") / v, lambda p: False, {})
