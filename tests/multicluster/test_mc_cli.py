"""The ``multicluster`` verbs end to end through click, against fakes of our Kubernetes seam."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh.cli import main
from mesh.install import Values, load_all
from mesh.multicluster import labels as mc
from mesh.multicluster.cli import kube
from mesh.multicluster.linking import LinkOptions, service_mirror_objects
from mesh.multicluster.render import REMOTE_ACCESS_RULES, allow_objects
from mesh.multicluster.values import McValues
from tests.multicluster.support import (
    CA_PEM,
    GATEWAY_IP,
    TOKEN,
    Connector,
    FakeCluster,
    decode_kubeconfig,
    installed,
    use,
    write_kubeconfig,
)

EAST_API = "https://172.30.25.2:6443"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    return str(
        write_kubeconfig(
            tmp_path / "config", {"east": EAST_API, "west": "https://172.30.25.3:6443"}
        )
    )


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


# -- install / uninstall / allow ------------------------------------------------------------


def test_install_reads_trust_domain_and_image_from_the_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cp = Values(cluster_domain="east.local", trust_domain="mesh.example", image_tag="dev")
    east = FakeCluster().add(*installed(cp_values=cp).objects.values())
    use(monkeypatch, Connector({"east": east}))
    code, out, err = run("--context", "east", "multicluster", "install")
    assert code == 0, err
    docs = by_kind(load_all(out))
    (service,) = [s for s in docs["Service"] if s["metadata"]["name"] == "linkerd-gateway"]
    assert service["metadata"]["annotations"]["mirror.linkerd.io/gateway-identity"] == (
        "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.mesh.example"
    )
    (deploy,) = docs["Deployment"]
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "isthmus/isthmus:dev"
    assert east.closed


def test_install_flags_and_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, Connector({"east": installed()}))
    code, out, err = run(
        "multicluster",
        "install",
        "--context",
        "east",
        "--image-tag",
        "t1",
        "--gateway=false",
        "--set",
        "identityTrustDomain=other.example",
    )
    assert code == 0, err
    docs = load_all(out)
    assert "Deployment" not in {d["kind"] for d in docs}
    code, out, _ = run("mc", "install", "--ignore-cluster", "--image-tag", "t1")
    assert code == 0
    images = {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in load_all(out)
        if d["kind"] == "Deployment"
    }
    assert images == {"isthmus/isthmus:t1"}


def test_install_needs_the_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, Connector({"east": FakeCluster()}))
    code, out, err = run("--context", "east", "multicluster", "install")
    assert code == 1
    assert out == ""
    assert "no ConfigMap linkerd/linkerd-config" in err
    assert "isthmus install" in err
    code, _, err = run("--context", "nowhere", "multicluster", "install")
    assert code == 1
    assert "cannot use the current cluster" in err


def test_install_rejects_bad_settings() -> None:
    code, _, err = run("multicluster", "install", "--ignore-cluster", "--set", "gateway.port=99999")
    assert code == 2
    assert "gateway.port 99999 is not a port number" in err


def test_uninstall_refuses_while_links_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    west = installed()
    west.add(
        {
            "apiVersion": "multicluster.linkerd.io/v1alpha3",
            "kind": "Link",
            "metadata": {"name": "east", "namespace": mc.NAMESPACE},
            "spec": {},
        }
    )
    use(monkeypatch, Connector({"west": west}))
    code, out, err = run("--context", "west", "multicluster", "uninstall")
    assert code == 1
    assert out == ""
    assert "isthmus multicluster unlink --cluster-name east" in err


def test_uninstall_includes_allowed_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    east = installed().add(*allow_objects(McValues(), "west-access"))
    use(monkeypatch, Connector({"east": east}))
    code, out, err = run("--context", "east", "multicluster", "uninstall")
    assert code == 0, err
    refs = {(r["kind"], r["metadata"]["name"]) for r in load_all(out)}
    assert {
        ("ClusterRole", "west-access"),
        ("ClusterRoleBinding", "west-access"),
        ("Namespace", "linkerd-multicluster"),
        ("CustomResourceDefinition", "links.multicluster.linkerd.io"),
    } <= refs
    code, out, _ = run("multicluster", "uninstall", "--ignore-cluster")
    assert code == 0
    assert ("ClusterRole", "west-access") not in {
        (r["kind"], r["metadata"]["name"]) for r in load_all(out)
    }


def test_uninstall_names_only_what_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """So that `kubectl delete -f -` exits 0 after an install without the gateway."""
    use(monkeypatch, Connector({"east": installed(McValues(gateway_enabled=False))}))
    code, out, err = run("--context", "east", "multicluster", "uninstall")
    assert code == 0, err
    names = {r["metadata"]["name"] for r in load_all(out)}
    assert "linkerd-gateway" not in names
    assert {"linkerd-multicluster", "links.multicluster.linkerd.io"} <= names
    use(monkeypatch, Connector({"east": FakeCluster()}))
    code, out, err = run("--context", "east", "multicluster", "uninstall")
    assert code == 0
    assert out == ""
    assert "nothing of the multicluster extension is installed here" in err


def test_allow() -> None:
    code, out, _ = run("multicluster", "allow", "--service-account-name", "west-access")
    assert code == 0
    assert [d["kind"] for d in load_all(out)] == [
        "ServiceAccount",
        "Secret",
        "ClusterRole",
        "ClusterRoleBinding",
    ]
    code, _, err = run("multicluster", "allow", "--service-account-name", "Not_OK")
    assert code == 2
    assert "service account name" in err


# -- link / link-gen ----------------------------------------------------------------------


def link_setup(monkeypatch: pytest.MonkeyPatch, east: FakeCluster | None = None) -> Connector:
    east = east or installed(server=EAST_API)
    return use(
        monkeypatch,
        Connector(
            {"east": east}, remote=FakeCluster(server=EAST_API).add(*installed().objects.values())
        ),
    )


def test_link_prints_credentials_link_and_controller(
    monkeypatch: pytest.MonkeyPatch, kubeconfig: str
) -> None:
    connector = link_setup(monkeypatch)
    code, out, err = run(
        "--kubeconfig",
        kubeconfig,
        "--context",
        "east",
        "multicluster",
        "link",
        "--cluster-name",
        "east",
    )
    assert code == 0, err
    docs = load_all(out)
    assert [d["kind"] for d in docs][:2] == ["Secret", "Link"]
    secret, link_doc = docs[0], docs[1]
    config = decode_kubeconfig(secret)
    assert config["clusters"][0]["cluster"] == {
        "server": EAST_API,
        "certificate-authority-data": base64.b64encode(CA_PEM).decode(),
    }
    assert config["users"][0]["user"] == {"token": TOKEN}
    assert link_doc["spec"]["gatewayAddress"] == GATEWAY_IP
    assert link_doc["spec"]["gatewayPort"] == "4143"
    assert link_doc["spec"]["gatewayIdentity"].startswith("linkerd-gateway.linkerd-multicluster.")
    assert link_doc["spec"]["targetClusterDomain"] == "cluster.local"
    assert docs[2:] == service_mirror_objects(McValues(image_tag="dev"), LinkOptions("east"))
    assert connector.kubeconfigs == [config], "the API check used the printed credentials"
    assert isinstance(connector.remote, FakeCluster)
    granted = {(r, v) for rule in REMOTE_ACCESS_RULES if "resourceNames" not in rule
               for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip
    assert connector.remote.reads, "the API server was asked something"
    assert set(connector.remote.reads) <= granted, "the check stays within the token's rights"


def test_link_flags(monkeypatch: pytest.MonkeyPatch, kubeconfig: str) -> None:
    link_setup(monkeypatch)
    code, out, err = run(
        "multicluster",
        "link",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "east",
        "--cluster-name",
        "east",
        "--api-server-address",
        "https://10.9.9.9:6443",
        "--gateway-addresses",
        "10.1.1.1,10.1.1.2",
        "--gateway-port",
        "5143",
        "--selector",
        "app in (web,api)",
        "--excluded-labels",
        "a,b",
        "--excluded-labels",
        "c",
        "--excluded-annotations",
        "note",
        "--remote-discovery-selector",
        "rd=yes",
    )
    assert code == 0, err
    secret, link_doc = load_all(out)[:2]
    assert decode_kubeconfig(secret)["clusters"][0]["cluster"]["server"] == "https://10.9.9.9:6443"
    spec = link_doc["spec"]
    assert spec["gatewayAddress"] == "10.1.1.1,10.1.1.2"
    assert spec["gatewayPort"] == "5143"
    assert spec["selector"] == {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]
    }
    assert spec["remoteDiscoverySelector"] == {"matchLabels": {"rd": "yes"}}
    assert spec["excludedLabels"] == ["a", "b", "c"]
    assert spec["excludedAnnotations"] == ["note"]


def test_link_takes_the_ca_from_the_token_secret_when_the_kubeconfig_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = str(write_kubeconfig(tmp_path / "config", {"east": EAST_API}, with_ca=False))
    args = (
        "--kubeconfig",
        config,
        "--context",
        "east",
        "multicluster",
        "link",
        "--cluster-name",
        "east",
    )
    link_setup(monkeypatch, installed(token_ca=b""))
    code, out, err = run(*args)
    assert code == 1
    assert out == ""
    assert "holds the target's CA" in err
    link_setup(monkeypatch, installed(token_ca=CA_PEM))
    code, out, err = run(*args)
    assert code == 0, err
    cluster = decode_kubeconfig(load_all(out)[0])["clusters"][0]["cluster"]
    assert cluster == {
        "server": EAST_API,
        "certificate-authority-data": base64.b64encode(CA_PEM).decode(),
    }


def test_link_gen_prints_secret_and_link_only(
    monkeypatch: pytest.MonkeyPatch, kubeconfig: str
) -> None:
    link_setup(monkeypatch)
    code, out, err = run(
        "--kubeconfig",
        kubeconfig,
        "--context",
        "east",
        "multicluster",
        "link-gen",
        "--cluster-name",
        "east",
    )
    assert code == 0, err
    assert [d["kind"] for d in load_all(out)] == ["Secret", "Link"]


def test_link_without_gateway(monkeypatch: pytest.MonkeyPatch, kubeconfig: str) -> None:
    link_setup(monkeypatch, installed(McValues(gateway_enabled=False)))
    args = (
        "--kubeconfig",
        kubeconfig,
        "--context",
        "east",
        "multicluster",
        "link",
        "--cluster-name",
        "east",
    )
    code, _, err = run(*args)
    assert code == 1
    assert "no gateway Service linkerd-multicluster/linkerd-gateway" in err
    assert "isthmus multicluster install" in err
    code, out, err = run(*args, "--gateway=false")
    assert code == 0, err
    assert "gatewayAddress" not in load_all(out)[1]["spec"]


@pytest.mark.parametrize(
    ("east", "args", "complaint"),
    [
        (installed(ingress=()), (), "no LoadBalancer ingress address yet"),
        (
            installed(token=None),
            (),
            f"no token for ServiceAccount linkerd-multicluster/{mc.REMOTE_ACCESS_SA}",
        ),
        (
            installed(),
            ("--service-account-name", "west-access"),
            "multicluster allow --service-account-name west-access",
        ),
        (FakeCluster(), (), "install the control plane there first"),
    ],
)
def test_link_errors_name_the_fix(
    monkeypatch: pytest.MonkeyPatch,
    kubeconfig: str,
    east: FakeCluster,
    args: tuple[str, ...],
    complaint: str,
) -> None:
    link_setup(monkeypatch, east)
    code, out, err = run(
        "--kubeconfig",
        kubeconfig,
        "--context",
        "east",
        "multicluster",
        "link",
        "--cluster-name",
        "east",
        *args,
    )
    assert code == 1
    assert out == ""
    assert complaint in err


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--cluster-name", "East"), "DNS-1123 label"),
        (("--cluster-name", "east", "--selector", "a in (b"), "--selector"),
        (("--cluster-name", "east", "--api-server-address", "10.0.0.1:6443"), "https:// URL"),
    ],
)
def test_link_bad_input_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, kubeconfig: str, args: tuple[str, ...], complaint: str
) -> None:
    link_setup(monkeypatch)
    code, out, err = run(
        "--kubeconfig", kubeconfig, "--context", "east", "multicluster", "link", *args
    )
    assert code == 2
    assert out == ""
    assert complaint in err


def test_link_to_an_unreachable_api_server_is_reported(
    monkeypatch: pytest.MonkeyPatch, kubeconfig: str
) -> None:
    """CONF-44: the address put in the kubeconfig is probed with the new credentials."""
    use(
        monkeypatch,
        Connector(
            {"east": installed()},
            remote=kube.ClusterError(
                "cannot reach the API server at https://10.9.9.9:6443: timed out"
            ),
        ),
    )
    args = (
        "--kubeconfig",
        kubeconfig,
        "--context",
        "east",
        "multicluster",
        "link",
        "--cluster-name",
        "east",
        "--api-server-address",
        "https://10.9.9.9:6443",
    )
    code, out, err = run(*args)
    assert code == 1
    assert out == ""
    assert "https://10.9.9.9:6443 cannot be reached with the link's credentials" in err
    assert "--api-server-address" in err
    code, out, _ = run(*args, "--skip-api-check")
    assert code == 0
    assert [d["kind"] for d in load_all(out)][:2] == ["Secret", "Link"]


def test_link_with_a_rejected_token_is_reported(
    monkeypatch: pytest.MonkeyPatch, kubeconfig: str
) -> None:
    use(
        monkeypatch, Connector({"east": installed()}, remote=kube.ClusterError("Unauthorized", 401))
    )
    code, _, err = run(
        "--kubeconfig",
        kubeconfig,
        "--context",
        "east",
        "multicluster",
        "link",
        "--cluster-name",
        "east",
    )
    assert code == 1
    assert "rejected the link's credentials" in err


# -- unlink ---------------------------------------------------------------------------------


def linked_source() -> FakeCluster:
    west = installed()
    options = LinkOptions("east")
    labels = {mc.CLUSTER_NAME: "east", mc.MIRRORED_SERVICE: "true"}
    west.add(
        *service_mirror_objects(McValues(), options),
        {
            "apiVersion": "multicluster.linkerd.io/v1alpha3",
            "kind": "Link",
            "metadata": {
                "name": "east",
                "namespace": mc.NAMESPACE,
                "labels": {mc.CLUSTER_NAME: "east"},
            },
            "spec": {"targetClusterName": "east", "gatewayAddress": GATEWAY_IP},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cluster-credentials-east", "namespace": mc.NAMESPACE},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web-east", "namespace": "shop", "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web-east", "namespace": "shop", "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db-east", "namespace": "data", "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web-north",
                "namespace": "shop",
                "labels": {**labels, mc.CLUSTER_NAME: "north"},
            },
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}},
    )
    return west


def test_unlink_lists_the_links_objects_in_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, Connector({"west": linked_source()}))
    code, out, err = run("--context", "west", "multicluster", "unlink", "--cluster-name", "east")
    assert code == 0, err
    refs = [
        (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]) for r in load_all(out)
    ]
    assert refs == [
        ("Deployment", mc.NAMESPACE, "linkerd-service-mirror-east"),
        ("Link", mc.NAMESPACE, "east"),
        ("Endpoints", "shop", "web-east"),
        ("Service", "data", "db-east"),
        ("Service", "shop", "web-east"),
        ("Secret", mc.NAMESPACE, "cluster-credentials-east"),
        ("RoleBinding", mc.NAMESPACE, "linkerd-service-mirror-read-remote-creds-east"),
        ("Role", mc.NAMESPACE, "linkerd-service-mirror-read-remote-creds-east"),
        ("ServiceAccount", mc.NAMESPACE, "linkerd-service-mirror-east"),
        ("ClusterRoleBinding", None, "linkerd-service-mirror-access-local-resources-east"),
        ("ClusterRole", None, "linkerd-service-mirror-access-local-resources-east"),
    ]


FEDERATED_WEB = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web-federated",
        "namespace": "shop",
        "labels": {mc.MIRRORED_SERVICE: "true"},
        "annotations": {mc.REMOTE_DISCOVERY: "web@east", mc.LOCAL_DISCOVERY: "web"},
    },
}


def test_unlink_of_the_last_link_lists_the_federated_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No controller is left to prune them: unlink lists them with the mirrors."""
    use(monkeypatch, Connector({"west": linked_source().add(FEDERATED_WEB)}))
    code, out, err = run("--context", "west", "multicluster", "unlink", "--cluster-name", "east")
    assert code == 0, err
    services = [r["metadata"]["name"] for r in load_all(out) if r["kind"] == "Service"]
    assert services == ["db-east", "web-east", "web-federated"], services


def test_unlink_leaves_federated_services_to_the_other_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    north = {
        "apiVersion": "multicluster.linkerd.io/v1alpha3",
        "kind": "Link",
        "metadata": {"name": "north", "namespace": mc.NAMESPACE},
        "spec": {"targetClusterName": "north"},
    }
    use(monkeypatch, Connector({"west": linked_source().add(FEDERATED_WEB, north)}))
    code, out, err = run("--context", "west", "multicluster", "unlink", "--cluster-name", "east")
    assert code == 0, err
    services = [r["metadata"]["name"] for r in load_all(out) if r["kind"] == "Service"]
    assert services == ["db-east", "web-east"], "north's controller prunes web@east itself"


def test_unlink_against_the_wrong_cluster_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, Connector({"east": installed()}))
    code, out, err = run("--context", "east", "multicluster", "unlink", "--cluster-name", "east")
    assert code == 1
    assert out == ""
    assert "run unlink against the SOURCE cluster" in err


# -- gateways -------------------------------------------------------------------------------

METRICS = """\
# TYPE gateway_alive gauge
gateway_alive{target_cluster_name="east"} 1
# TYPE gateway_probe_latency_ms histogram
gateway_probe_latency_ms_bucket{le="6.0",target_cluster_name="east"} 10
gateway_probe_latency_ms_bucket{le="+Inf",target_cluster_name="east"} 10
gateway_probe_latency_ms_count{target_cluster_name="east"} 10
gateway_probe_latency_ms_sum{target_cluster_name="east"} 20
"""


def mirror_pod(link: str, ready: bool = True) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"linkerd-service-mirror-{link}-abc",
            "namespace": mc.NAMESPACE,
            "labels": {"component": "linkerd-service-mirror", mc.CLUSTER_NAME: link},
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_gateways_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """CONF-17's columns: NUM_SVC counts the link's mirrors; latency is '-' when not alive."""
    west = linked_source()
    west.add(mirror_pod("east"))
    west.metrics[(mc.NAMESPACE, "linkerd-service-mirror-east-abc")] = METRICS
    west.add(
        {
            "apiVersion": "multicluster.linkerd.io/v1alpha3",
            "kind": "Link",
            "metadata": {"name": "north", "namespace": mc.NAMESPACE},
            "spec": {"targetClusterName": "north", "gatewayAddress": "10.0.0.9"},
        },
        {
            "apiVersion": "multicluster.linkerd.io/v1alpha3",
            "kind": "Link",
            "metadata": {"name": "podonly", "namespace": mc.NAMESPACE},
            "spec": {"targetClusterName": "podonly"},
        },
        mirror_pod("north", ready=False),
    )
    use(monkeypatch, Connector({"west": west}))
    code, out, err = run("--context", "west", "multicluster", "gateways")
    assert code == 0, err
    assert out.splitlines() == [
        "CLUSTER   ALIVE   NUM_SVC   LATENCY",
        "east      True    2         3ms",
        "north     False   1         -",
    ]
    assert "north: no ready mirror controller pod" in err
    code, out, _ = run("--context", "west", "multicluster", "gateways", "--cluster-name", "north")
    assert out.splitlines()[1:] == ["north     False   1         -"]


def test_gateways_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, Connector({"west": FakeCluster()}))
    code, _, err = run("--context", "west", "multicluster", "gateways")
    assert code == 1
    assert "isthmus multicluster install" in err


def test_every_verb_explains_itself() -> None:
    code, out, _ = run("multicluster", "--help")
    assert code == 0
    for verb in (
        "install",
        "uninstall",
        "allow",
        "link",
        "link-gen",
        "unlink",
        "gateways",
        "check",
    ):
        assert verb in out
        code, text, _ = run("multicluster", verb, "--help")
        assert code == 0
        assert "isthmus" in text, verb
