"""Objects every netns cluster needs once its API server is up: DNS Service and RBAC."""

from __future__ import annotations

from lightkube import Client, codecs
from lightkube.core.resource import Resource

from harness.topology import ClusterSpec

MANAGER = "isthmus-netns"


def manifests(spec: ClusterSpec, node_ip: str) -> str:
    """kube-dns (a ClusterIP Service whose EndpointSlice is CoreDNS on the node) and its RBAC."""
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "system:coredns"}}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "system:coredns"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {{k8s-app: kube-dns, kubernetes.io/name: CoreDNS}}
spec:
  clusterIP: {spec.dns_ip}
  ports:
  - {{name: dns, port: 53, protocol: UDP, targetPort: 53}}
  - {{name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-coredns
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: {MANAGER}
addressType: IPv4
endpoints:
- addresses: ["{node_ip}"]
  conditions: {{ready: true}}
ports:
- {{name: dns, port: 53, protocol: UDP}}
- {{name: dns-tcp, port: 53, protocol: TCP}}
"""


def apply(client: Client, spec: ClusterSpec, node_ip: str) -> None:
    for obj in codecs.load_all_yaml(manifests(spec, node_ip)):
        assert isinstance(obj, Resource)
        client.apply(obj, field_manager=MANAGER, force=True)
