"""One cluster's control plane in its server-node namespace: etcd, kube-apiserver,
controller manager, scheduler, kube-proxy and CoreDNS, all upstream binaries.

Start order follows dependencies; each step waits on a readiness check with a named
timeout and, if it fails, raises with the tail of the component's log.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from lightkube import Client, KubeConfig

from harness.providers.base import ProviderError
from harness.providers.netns import daemons
from harness.providers.netns.network import NodeNet
from harness.providers.netns.pki import ClusterPKI, KeyPair
from harness.settings import TIMEOUTS
from harness.topology import ClusterSpec
from harness.upstream import Binaries

API_PORT = 6443


@dataclass
class ClusterFiles:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    def kubeconfig(self, who: str) -> Path:
        return self.pki / f"{who}.kubeconfig"


def _controller_flags(kubeconfig: Path) -> list[str]:
    """Flags controller-manager and scheduler share: one identity, secure port on loopback."""
    kc = str(kubeconfig)
    return [
        "--kubeconfig", kc,
        "--authentication-kubeconfig", kc,
        "--authorization-kubeconfig", kc,
        "--bind-address", "127.0.0.1",
        "--leader-elect=false",
        "--v", "1",
    ]  # fmt: skip


class ControlPlane:
    """Starts and checks the control plane of ``spec`` on the server node ``node``."""

    def __init__(
        self,
        spec: ClusterSpec,
        node: NodeNet,
        files: ClusterFiles,
        bins: Binaries,
        progress: Callable[[str], None],
    ) -> None:
        self.spec, self.node, self.files, self.bins = spec, node, files, bins
        self.progress = progress
        self.server = f"https://{node.ip}:{API_PORT}"
        self.pki = ClusterPKI(files.pki, spec.name)
        self.admin = self.pki.issue("admin", "isthmus-admin", orgs=("system:masters",))

    def _spawn(self, name: str, argv: list[str]) -> int:
        return daemons.spawn(name, argv, self.files.logs, netns=self.node.netns)

    def _client_config(self, who: str, cn: str, orgs: tuple[str, ...] = ()) -> Path:
        pair = self.pki.issue(who, cn, orgs=orgs)
        return self.pki.kubeconfig(self.files.kubeconfig(who), self.spec.name, self.server, pair)

    def start(self) -> None:
        self.pki.kubeconfig(self.files.admin_kubeconfig, self.spec.name, self.server, self.admin)
        self._etcd()
        self._apiserver()
        self._controller_manager()
        self._scheduler()

    def _wait(self, what: str, timeout: float, pid: int, log: str, ok: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = daemons.exited(pid)
            if code is not None:
                path = self.files.logs / f"{log}.log"
                tail = daemons.log_tail(self.files.logs, log)
                raise ProviderError(
                    f"[{self.spec.name}] {what} exited ({code}) while starting; "
                    f"last log lines ({path}):\n{tail}"
                )
            try:
                if ok():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.25)
        raise ProviderError(
            f"[{self.spec.name}] {what} not ready within {timeout:.0f}s (timeout "
            f"ISTHMUS_TIMEOUT_*); last log lines:\n{daemons.log_tail(self.files.logs, log)}"
        )

    def _etcd(self) -> None:
        data = self.files.root / "etcd"
        pid = self._spawn(
            "etcd",
            [
                str(self.bins.path("etcd")),
                "--name",
                "default",
                "--data-dir",
                str(data),
                "--listen-client-urls",
                "http://127.0.0.1:2379",
                "--advertise-client-urls",
                "http://127.0.0.1:2379",
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "default=http://127.0.0.1:2380",
                "--listen-metrics-urls",
                "http://127.0.0.1:2381",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
                "--quota-backend-bytes",
                "2147483648",
            ],
        )
        self.progress(f"{self.spec.name}: etcd started")
        # etcd listens on the node namespace's loopback only; the API server's /readyz
        # (checked next) covers etcd health, here we wait for its data directory.
        self._wait(
            "etcd",
            TIMEOUTS.etcd_ready,
            pid,
            "etcd",
            lambda: (self.files.root / "etcd" / "member").exists(),
        )

    def _apiserver(self) -> None:
        spec, pki = self.spec, self.pki
        svc_ip = str(spec.service_cidr.network_address + 1)
        serving = pki.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                f"kubernetes.default.svc.{spec.domain}",
                "localhost",
            ),
            ips=(self.node.ip, svc_ip, "127.0.0.1"),
        )
        kubelet_client = pki.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", orgs=("system:masters",)
        )
        sa = pki.service_account_keys()
        front = pki.issue("front-proxy-client", "front-proxy-client")
        issuer = f"https://kubernetes.default.svc.{spec.domain}"
        pid = self._spawn(
            "kube-apiserver",
            [
                str(self.bins.path("kube-apiserver")),
                "--etcd-servers",
                "http://127.0.0.1:2379",
                "--advertise-address",
                self.node.ip,
                "--bind-address",
                "0.0.0.0",
                "--secure-port",
                str(API_PORT),
                "--service-cluster-ip-range",
                str(spec.service_cidr),
                "--client-ca-file",
                str(pki.ca.cert),
                "--tls-cert-file",
                str(serving.cert),
                "--tls-private-key-file",
                str(serving.key),
                "--kubelet-client-certificate",
                str(kubelet_client.cert),
                "--kubelet-client-key",
                str(kubelet_client.key),
                "--kubelet-preferred-address-types",
                "InternalIP",
                "--service-account-issuer",
                issuer,
                "--api-audiences",
                f"{issuer},https://kubernetes.default.svc",
                "--service-account-key-file",
                str(sa.cert),
                "--service-account-signing-key-file",
                str(sa.key),
                "--requestheader-client-ca-file",
                str(pki.ca.cert),
                "--requestheader-allowed-names",
                "front-proxy-client",
                "--requestheader-username-headers",
                "X-Remote-User",
                "--requestheader-group-headers",
                "X-Remote-Group",
                "--requestheader-extra-headers-prefix",
                "X-Remote-Extra-",
                "--proxy-client-cert-file",
                str(front.cert),
                "--proxy-client-key-file",
                str(front.key),
                "--authorization-mode",
                "Node,RBAC",
                "--enable-admission-plugins",
                "NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
                "--event-ttl",
                "30m",
                "--v",
                "1",
            ],
        )
        self.progress(f"{spec.name}: kube-apiserver started at {self.server}")
        self._wait(
            "kube-apiserver",
            TIMEOUTS.apiserver_ready,
            pid,
            "kube-apiserver",
            lambda: self.get("/readyz").status_code == 200,
        )
        self.progress(f"{spec.name}: kube-apiserver ready")

    def admin_client(self) -> Client:
        """A typed client as the cluster admin; the caller closes it."""
        return Client(KubeConfig.from_file(self.files.admin_kubeconfig))

    def _tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return ctx

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` on this cluster's API server as the admin."""
        with httpx.Client(verify=self._tls(), timeout=5) as c:
            return c.get(self.server + path)

    def _controller_manager(self) -> None:
        spec, pki = self.spec, self.pki
        kc = self._client_config("controller-manager", "system:kube-controller-manager")
        sa: KeyPair = KeyPair(pki.dir / "sa.pub", pki.dir / "sa.key")
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bins.path("kube-controller-manager")),
                *_controller_flags(kc),
                "--allocate-node-cidrs=true",
                "--cluster-cidr",
                str(spec.pod_cidr),
                "--node-cidr-mask-size",
                "24",
                "--service-cluster-ip-range",
                str(spec.service_cidr),
                "--cluster-name",
                spec.name,
                "--cluster-signing-cert-file",
                str(pki.ca.cert),
                "--cluster-signing-key-file",
                str(pki.ca.key),
                "--root-ca-file",
                str(pki.ca.cert),
                "--service-account-private-key-file",
                str(sa.key),
                "--use-service-account-credentials=true",
                "--configure-cloud-routes=false",
                "--controllers",
                "*,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            ],
        )
        self.progress(f"{spec.name}: kube-controller-manager started")

    def _scheduler(self) -> None:
        kc = self._client_config("scheduler", "system:kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                str(self.bins.path("kube-scheduler")),
                *_controller_flags(kc),
            ],
        )
        self.progress(f"{self.spec.name}: kube-scheduler started")

    def start_proxy(self, node: NodeNet, node_name: str) -> None:
        """kube-proxy (iptables mode) inside ``node``'s namespace."""
        kc = self._client_config("kube-proxy", "system:kube-proxy", orgs=("system:node-proxier",))
        daemons.spawn(
            f"kube-proxy-{node_name}",
            [
                str(self.bins.path("kube-proxy")),
                "--kubeconfig",
                str(kc),
                "--hostname-override",
                node_name,
                "--proxy-mode",
                "iptables",
                "--cluster-cidr",
                str(self.spec.pod_cidr),
                "--conntrack-max-per-core",
                "0",
                "--metrics-bind-address",
                "127.0.0.1:10249",
                "--healthz-bind-address",
                f"{node.ip}:10256",
                "--v",
                "1",
            ],
            self.files.logs,
            netns=node.netns,
        )

    def node_kubeconfig(self, node_name: str) -> Path:
        return self._client_config(
            f"kubelet-{node_name}", f"system:node:{node_name}", orgs=("system:nodes",)
        )

    def start_coredns(self) -> None:
        """CoreDNS for the cluster's own domain on the server node's address, port 53."""
        kc = self._client_config("coredns", "system:coredns")
        corefile = self.files.root / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {self.node.ip}
    errors
    health {self.node.ip}:8080
    ready {self.node.ip}:8181
    kubernetes {self.spec.domain} in-addr.arpa ip6.arpa {{
        kubeconfig {kc} {self.spec.name}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
        )
        pid = self._spawn("coredns", [str(self.bins.path("coredns")), "-conf", str(corefile)])
        self.progress(f"{self.spec.name}: CoreDNS started for domain {self.spec.domain!r}")

        def ready() -> bool:
            with httpx.Client(timeout=2) as c:
                return c.get(f"http://{self.node.ip}:8181/ready").status_code == 200

        self._wait("CoreDNS", TIMEOUTS.apiserver_ready, pid, "coredns", ready)
