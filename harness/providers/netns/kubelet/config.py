"""The kubelet stand-in's configuration: command-line facts and every named wait."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.providers.netns.kubelet.backoff import BackoffPolicy


@dataclass(frozen=True)
class KubeletTimings:
    """Every period and wait of the kubelet, in seconds, in one place."""

    #: the node Lease is renewed this often.
    lease_renew: float = 10.0
    #: the Lease's leaseDurationSeconds.
    lease_duration: int = 40
    #: the Node status (Ready heartbeat) is rewritten this often.
    node_status: float = 20.0
    #: waiting for the controller manager to set spec.podCIDR: poll period.
    pod_cidr_poll: float = 1.0
    #: a failed API call or sandbox step is retried after this long.
    retry: float = 2.0
    #: a pod waiting for a missing ConfigMap/Secret re-checks this often.
    volume_retry: float = 3.0
    #: ConfigMap/Secret volume contents are re-read this often.
    volume_resync: float = 30.0
    #: a projected token is renewed at this fraction of its lifetime.
    token_refresh_fraction: float = 0.8
    #: status changes closer together than this are written as one patch.
    status_debounce: float = 0.1
    #: pod grace period when the pod names none.
    default_grace: float = 30.0
    #: after SIGKILL, how long to wait for the processes to be reaped.
    kill_wait: float = 5.0
    #: SIGTERM to the kubelet: stop every pod within this budget.
    shutdown_budget: float = 15.0
    #: a pod's processes get at most this grace period during kubelet shutdown.
    shutdown_grace: float = 5.0
    #: a postStart hook that has not finished by then counts as failed.
    post_start_timeout: float = 120.0
    #: exec/attach: the client must open every stream it asked for within this time.
    stream_creation: float = 30.0
    #: after an exec'd command exits, its remaining output is forwarded for this long.
    exec_drain: float = 2.0
    #: ``logs -f`` and attach look for new output this often.
    log_follow_poll: float = 0.25
    #: port-forward: connecting to the pod's port gives up after this long.
    port_forward_dial: float = 10.0
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass(frozen=True)
class KubeletConfig:
    kubeconfig: Path
    node_name: str
    node_ip: str
    node_netns: str
    cluster_name: str
    cluster_domain: str
    dns_ip: str
    state_dir: Path
    netns_prefix: str
    bin_dir: Path
    python: str = sys.executable
    log_port: int = 10250
    etc_netns: Path = Path("/etc/netns")
    #: built upstream components whose images this node runs (name -> directory).
    upstream_dirs: dict[str, Path] = field(default_factory=dict)
    timings: KubeletTimings = field(default_factory=KubeletTimings)

    @property
    def node_netns_path(self) -> Path:
        return Path("/run/netns") / self.node_netns


def parse_args(argv: list[str] | None = None) -> KubeletConfig:
    p = argparse.ArgumentParser(
        prog="python -m harness.providers.netns.kubelet",
        description="Kubelet stand-in: runs the pods bound to one node as processes "
        "in network namespaces.",
    )
    p.add_argument("--kubeconfig", required=True, type=Path)
    p.add_argument("--node-name", required=True)
    p.add_argument("--node-ip", required=True)
    p.add_argument("--node-netns", required=True)
    p.add_argument("--cluster-name", required=True)
    p.add_argument("--cluster-domain", required=True)
    p.add_argument("--dns-ip", required=True)
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--netns-prefix", required=True)
    p.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    p.add_argument("--log-port", type=int, default=10250)
    p.add_argument(
        "--upstream-dir",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a built upstream component an image runs (e.g. podinfo=~/.cache/isthmus/...)",
    )
    a = p.parse_args(argv)
    upstream: dict[str, Path] = {}
    for item in a.upstream_dir:
        name, sep, directory = item.partition("=")
        if not sep or not name or not directory:
            p.error(f"--upstream-dir wants NAME=DIR, got {item!r}")
        upstream[name] = Path(directory)
    return KubeletConfig(
        kubeconfig=a.kubeconfig,
        node_name=a.node_name,
        node_ip=a.node_ip,
        node_netns=a.node_netns,
        cluster_name=a.cluster_name,
        cluster_domain=a.cluster_domain,
        dns_ip=a.dns_ip,
        state_dir=a.state_dir.resolve(),
        netns_prefix=a.netns_prefix,
        bin_dir=a.bin_dir,
        log_port=a.log_port,
        upstream_dirs=upstream,
    )
