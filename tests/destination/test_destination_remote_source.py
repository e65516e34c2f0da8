"""Remote discovery's converters at the Kubernetes edge: Links and credentials Secrets."""

from __future__ import annotations

import base64

import httpx2
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1

from mesh.destination.remote import LinkedCluster
from mesh.destination.remote_source import credentials, credentials_refused, linked_cluster
from mesh.multicluster.mirror.kube import LinkResource
from mesh.multicluster.mirror.link import LinkError


def secret(data: dict[str, str] | None) -> core_v1.Secret:
    return core_v1.Secret(metadata=ObjectMeta(name="cluster-credentials-west"), data=data)


def test_credentials_decode_the_kubeconfig_or_say_what_is_wrong() -> None:
    text = "apiVersion: v1\nkind: Config\n"
    ok = credentials(secret({"kubeconfig": base64.b64encode(text.encode()).decode()}))
    assert (ok.secret, ok.kubeconfig, ok.problem) == ("cluster-credentials-west", text, "")
    missing = credentials(secret({"other": "eA=="}))
    assert missing.kubeconfig is None
    assert "no key 'kubeconfig'" in missing.problem
    garbled = credentials(secret({"kubeconfig": "!!not base64!!"}))
    assert garbled.kubeconfig is None
    assert "not base64" in garbled.problem
    assert text not in repr(ok), "the kubeconfig (a token) never shows in a repr"


def link(spec: dict[str, object]) -> LinkResource:
    return LinkResource.from_dict(  # type: ignore[no-any-return]
        {
            "apiVersion": "multicluster.linkerd.io/v1alpha3",
            "kind": "Link",
            "metadata": {"name": "west", "namespace": "linkerd-multicluster"},
            "spec": spec,
        }
    )


def test_a_link_names_its_cluster_domain_secret_and_control_plane() -> None:
    found = linked_cluster(
        link(
            {
                "targetClusterName": "west",
                "targetClusterDomain": "west.example",
                "clusterCredentialsSecret": "cluster-credentials-west",
                "targetClusterLinkerdNamespace": "mesh",
            }
        )
    )
    assert found == LinkedCluster(
        "west", "west", "west.example", "cluster-credentials-west", "mesh"
    )
    with pytest.raises(LinkError):
        linked_cluster(link({"targetClusterName": "west"}))


def _api_error(code: int) -> ApiError:
    request = httpx2.Request("GET", "https://172.30.22.5:6443/api/v1/services")
    response = httpx2.Response(
        code, json={"kind": "Status", "code": code, "message": "m"}, request=request
    )
    return ApiError(request=request, response=response)


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (_api_error(401), True),
        (_api_error(403), True),
        (_api_error(500), False),
        (_api_error(404), False),
        (httpx2.ConnectError("All connection attempts failed"), False),
    ],
)
def test_only_401_and_403_say_the_credentials_are_refused(error: Exception, refused: bool) -> None:
    assert credentials_refused(error) is refused, error
