"""What suites ask of a mesh, as one protocol every mesh adapter implements.

Suites state intents (install on these clusters with one shared trust anchor, mark a
namespace for injection, read a pod's proxy metrics); an adapter turns each into that
mesh's actions. The harness reaches a mesh only through an adapter, and an adapter
reaches its mesh only through the mesh's CLI and the Kubernetes API, never its code.

Rules: adapters raise ``MeshError`` saying what failed, with the command and its output;
everything an adapter hands back is plain data (frozen dataclasses, paths, strings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

if TYPE_CHECKING:
    from harness.kube import Kube
    from harness.providers.base import Cluster

__all__ = [
    "CheckResult",
    "Feature",
    "IdentityApi",
    "IssuerFiles",
    "MeshAdapter",
    "MeshError",
    "ObjectRef",
    "SharedTrust",
    "manifest_refs",
]


class MeshError(RuntimeError):
    """A mesh action failed; the message names the action, the cluster and the output."""


class Feature(StrEnum):
    """What a mesh can be asked to do; a test needing one the adapter lacks is skipped."""

    INSTALL = "install"
    CHECK = "check"
    UNINSTALL = "uninstall"
    INJECTION = "injection"
    MTLS = "mtls"
    PROXY_METRICS = "proxy-metrics"
    HTTP_LOAD_BALANCING = "http-load-balancing"
    DEFAULT_INBOUND_POLICY = "default-inbound-policy"
    CONTROL_PLANE_RESILIENCE = "control-plane-resilience"
    IDENTITY_API = "identity-api"
    HOSTILE_INPUT = "hostile-input"
    MULTICLUSTER = "multicluster"
    """Install the extension, link and unlink clusters, mirror exported Services."""
    MULTICLUSTER_GATEWAY = "multicluster-gateway"
    """Traffic to a mirror crosses to the target through its gateway over mTLS."""
    MULTICLUSTER_STATUS = "multicluster-status"
    """``gateways``, ``check --multicluster``, Link status and the mirror controller's metrics."""
    MULTICLUSTER_UNINSTALL = "multicluster-uninstall"
    REMOTE_DISCOVERY = "remote-discovery"
    """Pod-to-pod multicluster: discovery resolves remote-discovery mirrors (and federated
    services) to the remote pods through the link's credentials, bypassing the gateway."""


@dataclass(frozen=True)
class IssuerFiles:
    """One cluster's issuer: a CA signed by the shared trust anchor (PEM files)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class SharedTrust:
    """One trust anchor for every cluster and an issuer per cluster (CONF-30)."""

    anchor_cert: Path
    anchor_key: Path
    issuers: Mapping[str, IssuerFiles]

    def issuer(self, cluster: str) -> IssuerFiles:
        try:
            return self.issuers[cluster]
        except KeyError:
            known = ", ".join(sorted(self.issuers)) or "none"
            raise MeshError(f"no issuer for cluster {cluster!r} (issuers: {known})") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "anchor_cert": str(self.anchor_cert),
            "anchor_key": str(self.anchor_key),
            "issuers": {
                name: {"cert": str(f.cert), "key": str(f.key)} for name, f in self.issuers.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SharedTrust:
        return cls(
            Path(data["anchor_cert"]),
            Path(data["anchor_key"]),
            {
                name: IssuerFiles(Path(f["cert"]), Path(f["key"]))
                for name, f in data["issuers"].items()
            },
        )


@dataclass(frozen=True)
class ObjectRef:
    """Enough of a Kubernetes object to find it again."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} ({self.api_version})"


@dataclass(frozen=True)
class CheckResult:
    """What the mesh's own health check said about one cluster."""

    cluster: str
    success: bool
    failures: tuple[str, ...] = ()
    """One line per failed check: what is wrong and, where given, what to do."""
    output: str = ""
    """The check's raw output (stdout, then stderr), for evidence."""

    def describe(self) -> str:
        if self.success:
            return f"[{self.cluster}] check passed"
        listed = "; ".join(self.failures) or self.output[-2000:]
        return f"[{self.cluster}] check failed: {listed}"


@dataclass(frozen=True)
class IdentityApi:
    """Where and how a mesh's identity service certifies workloads (a unary gRPC call).

    The request carries ``identity``, ``token`` and ``certificate_signing_request`` (DER),
    the response ``leaf_certificate`` and ``intermediate_certificates``, as Linkerd's.
    """

    proto: Path
    """The .proto file declaring the service (read, compiled at test time)."""
    service: str
    """Fully qualified service name, e.g. ``isthmus.identity.v1.Identity``."""
    method: str
    request: str
    """Fully qualified request message name."""
    response: str
    namespace: str
    service_name: str
    """The Kubernetes Service in front of the identity pods."""
    port: int
    token_audience: str
    plaintext: bool = True
    """Whether the port speaks gRPC without TLS."""
    service_account: str = ""
    """With TLS: the control-plane service account whose identity the server's
    certificate names (checked against the trust anchor)."""
    include_dirs: Sequence[Path] = field(default_factory=tuple)
    """Extra include paths for the .proto's imports."""


class MeshAdapter(Protocol):
    """Turns suite intents into one mesh's actions."""

    name: str
    features: frozenset[str]
    control_plane_ns: str
    """The namespace workload identities name (``...identity.<ns>.<trust domain>``)."""
    control_plane_namespaces: tuple[str, ...]
    """Every namespace the mesh owns (for diagnostics and the uninstall check)."""
    components: Mapping[str, tuple[str, str]]
    """Role (``identity``, ``destination``, ``proxy-injector``) -> (namespace, Deployment)."""
    identity_api: IdentityApi | None

    def create_trust(self, clusters: Sequence[Cluster], directory: Path) -> SharedTrust:
        """A trust anchor and an issuer per cluster in ``directory`` (kept if already there)."""
        ...

    def install(self, clusters: Sequence[Cluster], trust: SharedTrust) -> None:
        """Install the mesh on every cluster with ``trust``; return once each is healthy."""
        ...

    def check(self, cluster: Cluster, wait: float = 0) -> CheckResult:
        """Run the mesh's health check, retrying failures that may clear for ``wait`` s."""
        ...

    def uninstall(self, cluster: Cluster) -> None:
        """Remove everything the install made; return once it is gone."""
        ...

    def installed_objects(self, cluster: Cluster) -> list[ObjectRef]:
        """Every object the install applied to ``cluster`` (as recorded when installing)."""
        ...

    def mesh_namespace(self, kube: Kube, namespace: str) -> None:
        """Mark ``namespace`` so pods created in it from now on are meshed."""
        ...

    def inject(self, manifest: str) -> str:
        """``manifest`` with its workloads marked for meshing, as the mesh's CLI does it
        (``linkerd inject -``, ``isthmus inject -``)."""
        ...

    def metrics(self, kube: Kube, namespace: str, pod: str) -> str:
        """The Prometheus text of ``pod``'s proxy."""
        ...


def parse_check_json(cluster: str, stdout: str, stderr: str, code: int) -> CheckResult:
    """A ``CheckResult`` from Linkerd-shaped ``check -o json`` output."""
    output = stdout + (f"\n--- stderr ---\n{stderr}" if stderr.strip() else "")
    try:
        data = json.loads(stdout)
    except ValueError:
        reason = f"check exited {code} without JSON output: {(stderr or stdout).strip()[-1000:]}"
        return CheckResult(cluster, False, (reason,), output)
    failures = []
    for category in data.get("categories") or []:
        for check in category.get("checks") or []:
            if check.get("result") == "error":
                line = f"{category.get('categoryName')}: {check.get('description')}"
                if check.get("error"):
                    line += f": {check['error']}"
                if check.get("hint"):
                    line += f" (hint: {check['hint']})"
                failures.append(line)
    success = bool(data.get("success")) and code == 0
    if not success and not failures:
        failures.append(f"check exited {code} reporting success={data.get('success')}")
    return CheckResult(cluster, success, tuple(failures), output)


def manifest_refs(text: str) -> list[ObjectRef]:
    """A reference to every object of a multi-document YAML manifest."""
    refs = []
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict) or "kind" not in doc:
            continue
        meta = doc.get("metadata") or {}
        refs.append(
            ObjectRef(
                str(doc["apiVersion"]), str(doc["kind"]), str(meta["name"]), meta.get("namespace")
            )
        )
    return refs
