"""Every wait the harness makes, named and documented in one place.

Values are seconds. Override any of them with ``ISTHMUS_TIMEOUT_<NAME>`` (upper case).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Timeouts:
    #: etcd answers its health endpoint after start.
    etcd_ready: float = 60
    #: kube-apiserver answers /readyz after start.
    apiserver_ready: float = 120
    #: every node of a cluster is Ready and has a podCIDR.
    nodes_ready: float = 120
    #: the default ServiceAccount and kube-root-ca.crt exist in a new namespace.
    namespace_ready: float = 60
    #: a namespace is gone after deletion was requested.
    namespace_deleted: float = 120
    #: a Deployment reports all replicas ready.
    deployment_ready: float = 120
    #: an EndpointSlice lists the expected addresses.
    endpoints_ready: float = 60
    #: a pod's processes stop and its address is freed after deletion.
    pod_deleted: float = 60
    #: a convergence assertion sees N consecutive successes.
    convergence: float = 60
    #: one HTTP call through the API server's pod proxy.
    http_call: float = 15
    #: the provisioning lock is held by another pytest process.
    provision_lock: float = 1800
    #: the mesh's control plane is healthy (``check --wait``) after an install.
    mesh_install: float = 300
    #: one mesh CLI / kubectl command that prints or applies manifests.
    mesh_command: float = 120
    #: ``kubectl delete --wait`` of a mesh uninstall (namespace finalization included).
    mesh_uninstall: float = 180
    #: another process holds the mesh install lock (it may be installing every cluster).
    mesh_install_lock: float = 900
    #: a disruptive mesh test waits for every other mesh test of the run to finish.
    mesh_users_done: float = 1800
    #: the multicluster extension's gateway is ready after ``multicluster install``.
    multicluster_install: float = 240
    #: a link's mirror controller is ready after the link was applied.
    link_ready: float = 180
    #: a mirror (Service, Endpoints, Link status) reflects a change on the target.
    mirror_sync: float = 60
    #: a failover TrafficSplit's weights, and the traffic, follow its primary's readiness.
    failover_shift: float = 90
    #: gateway probes flip a mirror's readiness (failureThreshold x period, plus slack).
    gateway_probe: float = 90
    #: one ``kubectl exec``/``attach`` round trip, or one port-forwarded exchange.
    kubectl_stream: float = 30
    #: ``kubectl port-forward`` prints its local port; ``logs -f`` shows a new line.
    stream_ready: float = 20
    #: a crashing container has been restarted by its kubelet (back-off included).
    container_restart: float = 90
    #: a workload's log shows what it should print (a load generator's first reports).
    workload_output: float = 90
    #: another test holds a namespace a seed's manifests name (``test``, ``mc-demo``).
    seed_namespace_lock: float = 1200
    #: SIGTERM to SIGKILL for the processes of a run being torn down.
    teardown_grace: float = 5
    #: a packet capture in a node's network namespace has its socket open.
    capture_start: float = 10
    #: a mesh listener closes a slow or silent hostile connection (its limits are <= 30 s).
    hostile_close: float = 45
    #: a ``viz`` command's time beyond its own ``--window`` (listing pods, two scrapes).
    viz_command: float = 120

    #: a policy change reaches the server's proxy (seen on a running connection's next request).
    policy_update: float = 10
    #: requests follow a TrafficSplit / HTTPRoute change (destination streams it to proxies).
    split_settle: float = 5
    #: a run started to be killed (test_killed_runs) brings its cluster up (or is killed).
    killable_up: float = 600
    #: that run holds its clusters this long at most if nobody kills it.
    killable_hold: float = 900

    @classmethod
    def from_env(cls) -> Timeouts:
        values = {}
        for f in fields(cls):
            env = os.environ.get(f"ISTHMUS_TIMEOUT_{f.name.upper()}")
            if env:
                values[f.name] = float(env)
        return cls(**values)


TIMEOUTS = Timeouts.from_env()
