"""The hand-written gateway-mode manifests in ``fixtures/manifests/multicluster`` keep the
mc-contract's names, and the mirror they describe resolves to the gateway in discovery."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml

from mesh.destination import Address, ClusterSnapshot, DestinationWatcher, authority
from mesh.destination.config import DiscoveryConfig
from mesh.k8s.objects import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort
from mesh.multicluster import labels as mc

MANIFESTS = Path(__file__).parents[2] / "fixtures" / "manifests" / "multicluster"
GW_ID = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.target"


def render(file: str, **params: str) -> list[dict[str, Any]]:
    text = string.Template((MANIFESTS / file).read_text()).substitute(params)
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_gateway_manifest_follows_the_contract() -> None:
    docs = {d["kind"]: d for d in render("gateway.yaml", image_tag="dev", trust_domain="target")}
    template = docs["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "linkerd.io/inject": "enabled",
        mc.ENABLE_GATEWAY: "true",
    }
    (container,) = template["spec"]["containers"]
    assert (container["image"], container["args"]) == (
        "isthmus/isthmus:dev",
        ["component", "pause"],
    )
    service = docs["Service"]
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (
        mc.GATEWAY_NAME,
        mc.NAMESPACE,
    )
    assert service["spec"]["type"] == "LoadBalancer"
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {mc.GATEWAY_PORT_NAME: mc.GATEWAY_PORT, mc.PROBE_PORT_NAME: mc.PROBE_PORT}
    assert service["metadata"]["annotations"]["mirror.linkerd.io/gateway-identity"] == GW_ID


def test_the_mirror_manifest_resolves_to_the_gateway() -> None:
    service_doc, endpoints_doc = render(
        "mirror.yaml",
        name="web",
        link="target",
        namespace="demo",
        target_domain="target",
        gateway_identity=GW_ID,
        gateway_address="172.30.27.11",
        gateway_port="4143",
        port_name="http",
        port="8080",
    )
    assert service_doc["metadata"]["name"] == mc.mirror_service_name("web", "target")
    assert endpoints_doc["metadata"]["labels"] == service_doc["metadata"]["labels"]
    # What the controller-manager's EndpointSlice mirroring makes of them:
    meta = service_doc["metadata"]
    service = Service(
        namespace="demo",
        name=meta["name"],
        ports=tuple(ServicePort(p["port"], p["name"]) for p in service_doc["spec"]["ports"]),
        cluster_ip="10.171.0.20",
        cluster_ips=("10.171.0.20",),
        labels=meta["labels"],
        annotations=meta["annotations"],
    )
    (subset,) = endpoints_doc["subsets"]
    slice_ = EndpointSlice(
        namespace="demo",
        name=f"{meta['name']}-abcde",
        service_name=meta["name"],
        endpoints=tuple(Endpoint((a["ip"],)) for a in subset["addresses"]),
        ports=tuple(EndpointPort(p["port"], p["name"]) for p in subset["ports"]),
        labels=endpoints_doc["metadata"]["labels"],
        annotations=endpoints_doc["metadata"]["annotations"],
    )
    config = DiscoveryConfig(cluster_domain="source", trust_domain="source")
    watcher = DestinationWatcher(config, ClusterSnapshot.of([service], [slice_], []))
    _, updates = watcher.watch_endpoints(authority.parse("10.171.0.20:8080", "source"))
    (add,) = updates
    (endpoint,) = add.endpoints  # type: ignore[union-attr]
    assert endpoint.address == Address("172.30.27.11", 4143)
    assert endpoint.identity == GW_ID
    assert endpoint.authority_override == "web.demo.svc.target:8080"
    assert endpoint.labels["target_cluster"] == "target"
