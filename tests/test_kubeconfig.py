"""The link-secret kubeconfig parser: typed settings out, or a clear ``KubeconfigError``."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from mesh.multicluster.kubeconfig import MAX_SIZE, KubeconfigError, parse_kubeconfig
from tests.pem import self_signed_ca_pem

CA = self_signed_ca_pem()


def config(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "east",
        "clusters": [
            {
                "name": "east",
                "cluster": {
                    "server": "https://172.30.0.10:6443",
                    "certificate-authority-data": base64.b64encode(CA.encode()).decode(),
                },
            }
        ],
        "contexts": [{"name": "east", "context": {"cluster": "east", "user": "link"}}],
        "users": [{"name": "link", "user": {"token": "abc.def"}}],
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


_DELETE = object()


def text(doc: Any) -> str:
    return yaml.safe_dump(doc)


def test_a_link_kubeconfig_gives_server_ca_and_token() -> None:
    remote = parse_kubeconfig(text(config()))
    assert (remote.server, remote.token, remote.context) == (
        "https://172.30.0.10:6443",
        "abc.def",
        "east",
    )
    assert remote.ca_pem == CA


def test_the_only_context_is_used_without_current_context() -> None:
    remote = parse_kubeconfig(text(config(**{"current-context": _DELETE})))
    assert remote.context == "east"


def test_json_is_yaml_too() -> None:
    import json

    assert parse_kubeconfig(json.dumps(config())).server == "https://172.30.0.10:6443"


BAD = {
    "not-yaml": ("clusters: [", "not valid YAML"),
    "a-list": ("- a\n- b\n", "must be a mapping"),
    "nested-too-deep": ("[" * 100000, "YAML"),
    "no-clusters": (text(config(clusters=[])), "clusters must be a non-empty list"),
    "unknown-context": (text(config(**{"current-context": "west"})), "not among the contexts"),
    "missing-user": (text(config(users=[{"name": "other", "user": {"token": "t"}}])), "absent"),
    "plain-http": (
        text(config(clusters__0__cluster__server="http://172.30.0.10:6443")),
        "https://",
    ),
    "bad-port": (text(config(clusters__0__cluster__server="https://h:99999")), "not a URL"),
    "skip-verify": (
        text(config(**{"clusters__0__cluster__insecure-skip-tls-verify": True})),
        "skips TLS verification",
    ),
    "ca-file": (
        text(config(**{"clusters__0__cluster__certificate-authority": "/etc/ca.crt"})),
        "CA file",
    ),
    "ca-not-base64": (
        text(config(**{"clusters__0__cluster__certificate-authority-data": "!!!"})),
        "not base64",
    ),
    "ca-not-pem": (
        text(config(**{"clusters__0__cluster__certificate-authority-data": "aGVsbG8="})),
        "not PEM certificates",
    ),
    "exec": (
        text(config(users=[{"name": "link", "user": {"exec": {"command": "sh"}}}])),
        "runs a command",
    ),
    "token-file": (
        text(config(users=[{"name": "link", "user": {"tokenFile": "/etc/shadow"}}])),
        "reads a local file",
    ),
    "no-token": (text(config(users=[{"name": "link", "user": {}}])), "token must be"),
    "token-with-newline": (
        text(config(users=[{"name": "link", "user": {"token": "a\nb"}}])),
        "whitespace",
    ),
    "duplicate-names": (
        text(config(contexts=[{"name": "east", "context": {}}, {"name": "east", "context": {}}])),
        "two entries named",
    ),
    "too-large": ("a: " + "x" * MAX_SIZE, "larger than"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unusable_kubeconfigs_are_refused_clearly(case: str) -> None:
    source, message = BAD[case]
    with pytest.raises(KubeconfigError, match=message):
        parse_kubeconfig(source)


def test_a_remote_cluster_writes_a_kubeconfig_that_reads_back_the_same() -> None:
    remote = parse_kubeconfig(text(config()))
    assert "abc.def" not in repr(remote)
    back = parse_kubeconfig(yaml.safe_dump(remote.kubeconfig()))
    assert (back.server, back.ca_pem, back.token) == (remote.server, remote.ca_pem, remote.token)
