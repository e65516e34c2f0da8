"""The credentials Secret's kubeconfig is read strictly; errors say what is wrong."""

from __future__ import annotations

import base64

import pytest
import yaml

from mesh.multicluster.kubeconfig import KubeconfigError, parse_kubeconfig

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def kubeconfig(
    *,
    server: str = "https://172.30.1.11:6443",
    ca: str | None = base64.b64encode(PEM.encode()).decode(),
    token: str | None = "s3cret-token",
    current: str | None = "east",
) -> str:
    cluster: dict[str, str] = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = ca
    user = {"token": token} if token is not None else {}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "east", "cluster": cluster}],
        "users": [{"name": "mirror", "user": user}],
        "contexts": [{"name": "east", "context": {"cluster": "east", "user": "mirror"}}],
    }
    if current is not None:
        doc["current-context"] = current
    return yaml.safe_dump(doc)


def test_a_link_kubeconfig_parses() -> None:
    remote = parse_kubeconfig(kubeconfig())
    assert remote.server == "https://172.30.1.11:6443"
    assert remote.ca_pem == PEM
    assert remote.token == "s3cret-token"
    assert "s3cret" not in repr(remote)
    back = parse_kubeconfig(yaml.safe_dump(remote.kubeconfig()))
    assert back == remote


def test_the_only_context_serves_without_current_context() -> None:
    assert parse_kubeconfig(kubeconfig(current=None)).token == "s3cret-token"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{{{not yaml", "not YAML"),
        ("- a\n- b\n", "not a YAML map"),
        (kubeconfig(current="west"), "no context named 'west'"),
        (kubeconfig(server="http://172.30.1.11:6443"), "not an https:// URL"),
        (kubeconfig(server="https://host:99999"), "bad port"),
        (kubeconfig(ca=None), "no certificate-authority-data"),
        (kubeconfig(ca="%%%"), "not base64 PEM"),
        (kubeconfig(ca=base64.b64encode(b"hello").decode()), "no PEM certificate"),
        (kubeconfig(token=None), "no bearer token"),
        (kubeconfig(token="  "), "no bearer token"),
    ],
)
def test_bad_kubeconfigs_say_why(text: str, error: str) -> None:
    with pytest.raises(KubeconfigError, match=error) as info:
        parse_kubeconfig(text)
    assert "s3cret" not in str(info.value)
