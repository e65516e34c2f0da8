"""``viz edges``: who talked to whom, with both ends' identities, from one scrape, sans I/O.

Rules:
- An edge is seen from the client: a scraped pod's outbound series that have
  carried traffic (``response_total`` or ``tcp_open_total`` above zero) give
  SRC (the pod's own resource), DST (the ``dst_<kind>`` label discovery gave,
  else the Service it was sent to), CLIENT_ID (the pod's own identity) and
  SERVER_ID (the ``server_id`` the proxy verified). A destination in another
  cluster (``dst_target_cluster``) is named with that cluster: in gateway
  mode SERVER_ID is the gateway's identity, as the proxy saw it.
- Inbound series add the edges whose client is not one of the scraped pods
  (another cluster's pod, or an unscraped namespace): SRC is the client
  identity's service account and namespace, CLIENT_ID the identity the server
  verified, and MSG says the source is not a pod of this cluster.
- Plaintext edges keep an empty identity and say why in MSG (``no_tls_reason``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mesh.viz.scrape import PodScrape, Sample

__all__ = ["Edge", "edges"]

_TRAFFIC = ("response_total", "tcp_open_total")


@dataclass(frozen=True, slots=True, order=True)
class Edge:
    src_namespace: str
    src: str
    dst_namespace: str
    dst: str
    client_id: str
    server_id: str
    msg: str = ""
    src_cluster: str = ""
    dst_cluster: str = ""


def _carried(s: Sample, direction: str) -> bool:
    return s.name in _TRAFFIC and s.value > 0 and s.labels.get("direction") == direction


def _identity_parts(identity: str) -> tuple[str, str] | None:
    parts = identity.split(".")
    if len(parts) >= 4 and parts[2] == "serviceaccount" and parts[3] == "identity":
        return parts[0], parts[1]
    return None


def _plain(s: Sample) -> str:
    if s.labels.get("tls") == "true":
        return ""
    return s.labels.get("no_tls_reason") or s.labels.get("tls", "") or "no tls"


def edges(scrapes: Iterable[PodScrape], kind: str, namespace: str | None) -> list[Edge]:
    """The edges between ``kind`` resources touching ``namespace`` (None: every namespace)."""
    scrapes = list(scrapes)
    found: set[Edge] = set()
    seen_clients: set[tuple[str, str, str]] = set()
    """(client identity, dst namespace, dst name) already explained by a client's own series."""
    for scrape in scrapes:
        w = scrape.workload
        src = w.owner(kind)
        if src is None:
            continue
        for s in scrape.samples:
            if not _carried(s, "outbound"):
                continue
            labels = s.labels
            dst_ns = labels.get("dst_namespace", "")
            dst = (
                labels.get("dst_namespace", "")
                if kind == "namespace"
                else labels.get(f"dst_{kind}", "")
            )
            cluster = labels.get("dst_target_cluster", "")
            if not dst:
                service = labels.get("dst_target_service") or labels.get("dst_service", "")
                if not service:
                    continue
                dst = f"svc/{service}"
                dst_ns = labels.get("dst_target_service_namespace") or dst_ns
            if namespace is not None and namespace not in (w.namespace, dst_ns):
                continue
            edge = Edge(
                w.namespace,
                src,
                dst_ns,
                dst,
                w.identity or "",
                labels.get("server_id", ""),
                _plain(s),
                w.cluster,
                cluster or w.cluster,
            )
            found.add(edge)
            if w.identity and not cluster:
                seen_clients.add((w.identity, dst_ns, dst))
    for scrape in scrapes:
        w = scrape.workload
        server = w.owner(kind)
        if server is None or (namespace is not None and w.namespace != namespace):
            continue
        for s in scrape.samples:
            client = s.labels.get("client_id", "")
            if not client or not _carried(s, "inbound"):
                continue
            if (client, w.namespace, server) in seen_clients:
                continue
            parts = _identity_parts(client)
            src_sa, src_ns = parts if parts else (client, "")
            found.add(
                Edge(
                    src_ns,
                    src_sa,
                    w.namespace,
                    server,
                    client,
                    w.identity or "",
                    "source is not a pod of this cluster",
                    "",
                    w.cluster,
                )
            )
    return sorted(found)
