"""resolv.conf and hosts of a pod."""

from __future__ import annotations

from harness.providers.netns.kubelet.kobjects import Pod
from harness.providers.netns.kubelet.podfiles import hosts_file, resolv_conf


def pod(**spec: object) -> Pod:
    return {"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec}  # type: ignore[typeddict-item]


def test_cluster_first_uses_cluster_dns_and_search_path() -> None:
    assert resolv_conf(pod(), "east.local", "10.96.0.10") == (
        "nameserver 10.96.0.10\n"
        "search shop.svc.east.local svc.east.local east.local\n"
        "options ndots:5\n"
    )


def test_default_and_host_network_cluster_first_keep_the_node_file() -> None:
    assert resolv_conf(pod(dnsPolicy="Default"), "d", "1.1.1.1") is None
    assert resolv_conf(pod(hostNetwork=True), "d", "1.1.1.1") is None
    assert (
        resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), "d", "10.0.0.10")
        is not None
    )


def test_dns_config_merges_and_none_uses_only_it() -> None:
    cfg = {
        "nameservers": ["1.1.1.1"],
        "searches": ["corp"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    assert resolv_conf(pod(dnsConfig=cfg), "d", "10.0.0.10") == (
        "nameserver 10.0.0.10\nnameserver 1.1.1.1\n"
        "search shop.svc.d svc.d d corp\noptions ndots:2 edns0\n"
    )
    assert resolv_conf(pod(dnsPolicy="None", dnsConfig=cfg), "d", "10.0.0.10") == (
        "nameserver 1.1.1.1\nsearch corp\noptions ndots:2 edns0\n"
    )


def test_hosts_file_names_the_pod_and_adds_host_aliases() -> None:
    text = hosts_file(
        pod(hostAliases=[{"ip": "10.1.1.1", "hostnames": ["a", "b"]}]), "10.42.0.7", "east.local"
    )
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.42.0.7\tweb-0" in lines
    assert lines[-1] == "10.1.1.1\ta\tb"


def test_hosts_file_with_subdomain_has_the_fqdn() -> None:
    text = hosts_file(pod(hostname="h", subdomain="sub"), "10.42.0.7", "east.local")
    assert "10.42.0.7\th.sub.shop.svc.east.local\th" in text.splitlines()
