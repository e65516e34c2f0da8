"""The proxy's environment contract: what the injector writes parses, and bad values are named."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import pytest

from mesh.inject.proxyenv import PodSettings, proxy_env
from mesh.install.values import Values
from mesh.k8s.annotations import PortRanges
from mesh.proxy.discovery import Address
from mesh.proxy.envconfig import EnvError, ServiceAddr, load, log_levels, parse_duration
from mesh.proxy.policy import Network
from tests.proxy.proxy_support import Mesh

ANCHORS = Mesh().anchors_pem().decode()


def injected_env(**pod: str) -> dict[str, str]:
    """The env the injector gives a pod, with Kubernetes' ``$(VAR)`` expansion done."""
    settings = PodSettings(
        log_level=pod.get("log_level", "warn,linkerd=info"),
        default_inbound_policy=pod.get("policy", "all-unauthenticated"),
        opaque_ports=pod.get("opaque", "25,3306,4444-4445"),
        inbound_ports=pod.get("ports", "8080,9090"),
        skip_inbound_ports="4190,4191",
        skip_outbound_ports="",
    )
    downward = {
        "_pod_name": "web-0",
        "_pod_ns": "shop",
        "_pod_nodeName": "node-1",
        "_pod_sa": "web",
        "LINKERD2_PROXY_INBOUND_IPS": "10.42.0.7",
    }
    env: dict[str, str] = {}
    for var in proxy_env(Values(), settings, ANCHORS):
        value = var.get("value")
        if value is None:
            value = downward[var["name"]]
        for name, known in env.items():
            value = value.replace(f"$({name})", known)
        env[var["name"]] = value
    return env


def test_the_injected_environment_parses() -> None:
    config = load(injected_env())
    assert config.inbound_listen == Address("0.0.0.0", 4143)
    assert config.outbound_listen == Address("127.0.0.1", 4140)
    assert config.admin_listen == Address("0.0.0.0", 4191)
    assert config.control_listen == Address("0.0.0.0", 4190)
    assert config.log == "warn,linkerd=info"
    assert config.inbound.default_policy == "all-unauthenticated"
    assert config.inbound.ports == (8080, 9090)
    assert 4444 in config.inbound.opaque_ports
    assert 4446 not in config.inbound.opaque_ports
    assert config.inbound.ips == ("10.42.0.7",)
    assert config.identity is not None
    assert config.identity.local_name == ("web.shop.serviceaccount.identity.linkerd.cluster.local")
    assert config.identity.token_file == PurePosixPath(
        "/var/run/secrets/tokens/linkerd-identity-token"
    )
    assert config.identity.svc == ServiceAddr(
        "linkerd-identity-headless.linkerd.svc.cluster.local.", 8080
    )
    assert config.identity.trust_anchors_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert config.destination is not None
    assert config.destination.svc.grpc_target == (
        "dns:///linkerd-dst-headless.linkerd.svc.cluster.local.:8086"
    )
    assert config.destination.profile_suffixes == ("svc.cluster.local",)
    assert '"ns":"shop"' in config.destination.context
    assert config.policy is not None
    assert config.policy.workload == "shop:web-0"
    assert config.policy.svc.port == 8090
    proxy = config.proxy_config()
    assert (proxy.inbound_port, proxy.outbound_port, proxy.admin_port) == (4143, 4140, 4191)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "0.0.0.0", "not host:port"),
        ("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "proxy:4143", "must be an IP"),
        ("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "0.0.0.0:70000", "not host:port"),
        ("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "allow-all", "is not one of"),
        ("LINKERD2_PROXY_INBOUND_PORTS", "8080,http", "'http' is not a port"),
        ("LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", "90-80", "ends before"),
        ("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", "10.0.0.0/33", "10.0.0.0/33"),
        ("LINKERD2_PROXY_INBOUND_IPS", "10.42.0.300", "10.42.0.300"),
        ("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "dst_svc.linkerd:8086", "DNS-1123"),
        ("LINKERD2_PROXY_DESTINATION_CONTEXT", "{not json", "Expecting"),
        ("LINKERD2_PROXY_POLICY_WORKLOAD", '{"ns":"shop"}', '"pod"'),
        ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", "$(_pod_sa).shop.serviceaccount", "identity"),
        ("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "not a certificate", "no certificates"),
        ("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", "relative/token", "absolute path"),
        ("LINKERD2_PROXY_LOG", "warn,linkerd=loud", "unknown log level"),
        ("LINKERD2_PROXY_LOG_FORMAT", "xml", "not plain or json"),
        ("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "soon", "not a duration"),
    ],
)
def test_a_bad_value_is_named(variable: str, value: str, message: str) -> None:
    env = injected_env()
    env[variable] = value
    with pytest.raises(EnvError) as error:
        load(env)
    assert len(error.value.problems) == 1
    problem = error.value.problems[0]
    assert problem.startswith(f"{variable}: ")
    assert message in problem


def test_every_problem_is_reported_at_once() -> None:
    env = injected_env()
    env["LINKERD2_PROXY_INBOUND_PORTS"] = "x"
    del env["LINKERD2_PROXY_IDENTITY_TOKEN_FILE"]
    with pytest.raises(EnvError) as error:
        load(env)
    assert [p.split(":")[0] for p in error.value.problems] == [
        "LINKERD2_PROXY_INBOUND_PORTS",
        "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
    ]
    assert "required" in error.value.problems[1]


def test_identity_may_be_disabled_and_services_left_out() -> None:
    config = load({"LINKERD2_PROXY_IDENTITY_DISABLED": "true"})
    assert config.identity is None
    assert config.destination is None
    assert config.policy is None
    assert config.inbound.default_policy == "all-unauthenticated"


def test_a_policy_address_needs_a_workload() -> None:
    env = {"LINKERD2_PROXY_IDENTITY_DISABLED": "1", "LINKERD2_PROXY_POLICY_SVC_ADDR": "p.:8090"}
    with pytest.raises(EnvError, match="LINKERD2_PROXY_POLICY_WORKLOAD: required"):
        load(env)


def test_cluster_networks_are_the_default_profile_networks() -> None:
    env = injected_env()
    env["LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"] = "10.42.0.0/16,fd00::/8"
    del env["LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS"]
    config = load(env)
    assert config.inbound.cluster_networks == (
        Network.parse("10.42.0.0/16"),
        Network.parse("fd00::/8"),
    )
    assert config.destination is not None
    assert config.destination.profile_networks == config.inbound.cluster_networks


@pytest.mark.parametrize(
    ("host", "wanted"),
    [
        ("web.shop.svc.cluster.local", True),
        ("web.shop.svc.cluster.local.", True),
        ("WEB.shop.svc.Cluster.Local", True),
        ("web.shop.svc.cluster.localhost", False),
        ("example.com", False),
    ],
)
def test_profile_suffixes_select_names(host: str, wanted: bool) -> None:
    config = load(injected_env())
    assert config.destination is not None
    assert config.destination.discoverable_name(host) is wanted


@pytest.mark.parametrize(
    ("spec", "root", "loggers"),
    [
        ("warn,linkerd=info", logging.WARNING, {"mesh.proxy": logging.INFO}),
        ("debug", logging.DEBUG, {}),
        ("info,linkerd2_proxy::app=trace", logging.INFO, {"mesh.proxy": logging.DEBUG}),
        (
            "error,mesh.proxy.outbound=debug,hyper=trace",
            logging.ERROR,
            {"mesh.proxy.outbound": logging.DEBUG},
        ),
        ("off", logging.CRITICAL + 10, {}),
    ],
)
def test_log_levels(spec: str, root: int, loggers: dict[str, int]) -> None:
    assert log_levels(spec) == (root, loggers)


@pytest.mark.parametrize(
    ("text", "seconds"), [("2s", 2.0), ("500ms", 0.5), ("1m30s", 90.0), ("1h", 3600.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_ipv6_service_addresses_are_bracketed() -> None:
    env = {
        "LINKERD2_PROXY_IDENTITY_DISABLED": "1",
        "LINKERD2_PROXY_DESTINATION_SVC_ADDR": "[fd00::1]:8086",
        "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION": "3306, 4444-4445",
    }
    config = load(env)
    assert config.destination is not None
    assert config.destination.svc.grpc_target == "[fd00::1]:8086"
    assert config.inbound.opaque_ports == PortRanges(((3306, 3306), (4444, 4445)))
