"""A pod's ``/etc/resolv.conf`` and ``/etc/hosts`` (pure).

``ip netns exec`` binds ``/etc/netns/<netns>/*`` over ``/etc``; these functions
produce what goes there. DNS follows ``dnsPolicy``: ClusterFirst (the default) and
ClusterFirstWithHostNet use the cluster DNS with Kubernetes' search path and
``ndots:5``; ``None`` uses only ``dnsConfig``; ``Default`` — and ClusterFirst on a
hostNetwork pod — keeps the node's file (``None`` is returned).
"""

from __future__ import annotations

from harness.providers.netns.kubelet.kobjects import Pod


def pod_hostname(pod: Pod) -> str:
    spec = pod.get("spec", {})
    return (spec.get("hostname") or pod.get("metadata", {}).get("name", ""))[:63]


def resolv_conf(pod: Pod, cluster_domain: str, dns_ip: str) -> str | None:
    spec = pod.get("spec", {})
    ns = pod.get("metadata", {}).get("namespace", "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = spec.get("hostNetwork", False)
    if policy == "Default" or (policy == "ClusterFirst" and host_network):
        return None
    nameservers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if policy != "None":
        nameservers = [dns_ip]
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        options = {"ndots": "5"}
    extra = spec.get("dnsConfig") or {}
    for server in extra.get("nameservers") or []:
        if server not in nameservers:
            nameservers.append(server)
    for search in extra.get("searches") or []:
        if search not in searches:
            searches.append(search)
    for opt in extra.get("options") or []:
        options[opt.get("name", "")] = opt.get("value")
    lines = [f"nameserver {s}" for s in nameservers[:3]]
    if searches:
        lines.append("search " + " ".join(searches[:32]))
    if options:
        lines.append(
            "options "
            + " ".join(
                name if value is None else f"{name}:{value}" for name, value in options.items()
            )
        )
    return "\n".join(lines) + "\n"


def hosts_file(pod: Pod, pod_ip: str, cluster_domain: str) -> str:
    """The Kubernetes-managed hosts file: localhost, the pod's own name, hostAliases."""
    spec = pod.get("spec", {})
    ns = pod.get("metadata", {}).get("namespace", "default")
    hostname = pod_hostname(pod)
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    subdomain = spec.get("subdomain")
    if subdomain:
        fqdn = f"{hostname}.{subdomain}.{ns}.svc.{cluster_domain}"
        lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in aliases:
            lines.append("\t".join([alias.get("ip", ""), *(alias.get("hostnames") or [])]))
    return "\n".join(lines) + "\n"
