"""The ``isthmus`` adapter's multicluster side: ``isthmus multicluster ...`` and kubectl.

``multicluster install`` and ``multicluster link`` print manifests, applied with
``kubectl apply --server-side`` (link: rendered against the target, applied to the
source, as Linkerd's docs do); ``unlink`` and ``uninstall`` print what
``kubectl delete`` removes. What was applied is kept under the adapter's workdir
(``<cluster>/multicluster.yaml``, ``<source>/link-<name>.yaml``) for people reading a
failure and for the uninstall check. Readiness is ``kubectl rollout status``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.adapters.base import (
    CheckResult,
    MeshError,
    ObjectRef,
    manifest_refs,
    parse_check_json,
)
from harness.adapters.multicluster import (
    EXPORT_LABEL,
    EXPORT_MODES,
    GatewayRow,
    LinkRecord,
    parse_gateways,
)
from harness.settings import TIMEOUTS

if TYPE_CHECKING:
    from harness.adapters.isthmus import Completed, Runner
    from harness.kube import Kube
    from harness.providers.base import Cluster

__all__ = ["IsthmusMulticluster"]

MC_NAMESPACE = "linkerd-multicluster"
GATEWAY = "linkerd-gateway"
MIRROR_METRICS_PORT = 9999
MIRROR_COMPONENT = {"component": "linkerd-service-mirror"}
CLUSTER_NAME_LABEL = "mirror.linkerd.io/cluster-name"

Edit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def mirror_controller(link: str) -> str:
    """The Deployment of a link's mirror controller (Linkerd's name)."""
    return f"linkerd-service-mirror-{link}"


class IsthmusMulticluster:
    """Mixed into ``IsthmusAdapter``: multicluster intents through ``isthmus multicluster``."""

    multicluster_namespace = MC_NAMESPACE
    image_tag: str
    runner: Runner

    if TYPE_CHECKING:  # provided by IsthmusAdapter

        @property
        def isthmus(self) -> tuple[str, ...]: ...

        def _run(
            self,
            argv: Sequence[str],
            what: str,
            input: str | None = None,
            timeout: float = TIMEOUTS.mesh_command,
        ) -> Completed: ...
        def _kubectl(self, cluster: Cluster, *args: str) -> list[str]: ...
        def _target(self, cluster: Cluster) -> list[str]: ...
        def _apply(self, cluster: Cluster, manifests: str, what: str) -> None: ...
        def _cluster_dir(self, cluster: Cluster) -> Path: ...

    # -- install -----------------------------------------------------------------------------

    def multicluster_install_args(self, cluster: Cluster) -> list[str]:
        return [
            *self.isthmus,
            "multicluster",
            "install",
            *self._target(cluster),
            "--image-tag",
            self.image_tag,
        ]

    def multicluster_install(self, cluster: Cluster) -> None:
        done = self._run(
            self.multicluster_install_args(cluster), f"[{cluster.name}] multicluster install"
        )
        (self._cluster_dir(cluster) / "multicluster.yaml").write_text(done.stdout)
        self._apply(cluster, done.stdout, "the multicluster extension")
        if any(r.kind == "Deployment" and r.name == GATEWAY for r in manifest_refs(done.stdout)):
            self._rollout(cluster, GATEWAY, TIMEOUTS.multicluster_install)

    def multicluster_installed_objects(self, cluster: Cluster) -> list[ObjectRef]:
        path = self._cluster_dir(cluster) / "multicluster.yaml"
        if not path.is_file():
            raise MeshError(f"[{cluster.name}] no record of a multicluster install ({path})")
        return manifest_refs(path.read_text())

    def multicluster_uninstall_objects(self, cluster: Cluster) -> list[ObjectRef]:
        done = self._run(
            [*self.isthmus, "multicluster", "uninstall", *self._target(cluster)],
            f"[{cluster.name}] multicluster uninstall",
        )
        return manifest_refs(done.stdout)

    def multicluster_uninstall(self, cluster: Cluster) -> None:
        refs = self._run(
            [*self.isthmus, "multicluster", "uninstall", *self._target(cluster)],
            f"[{cluster.name}] multicluster uninstall",
        )
        self._run(
            self._kubectl(
                cluster,
                "delete",
                "--ignore-not-found",
                "--wait=true",
                f"--timeout={TIMEOUTS.mesh_uninstall:.0f}s",
                "-f",
                "-",
            ),
            f"[{cluster.name}] deleting what multicluster uninstall names",
            input=refs.stdout,
            timeout=TIMEOUTS.mesh_uninstall + TIMEOUTS.mesh_command,
        )

    def _rollout(self, cluster: Cluster, deployment: str, timeout: float) -> None:
        self._run(
            self._kubectl(
                cluster,
                "-n",
                MC_NAMESPACE,
                "rollout",
                "status",
                f"deployment/{deployment}",
                f"--timeout={timeout:.0f}s",
            ),
            f"[{cluster.name}] waiting for {MC_NAMESPACE}/{deployment} to be ready",
            timeout=timeout + 30,
        )

    # -- links -------------------------------------------------------------------------------

    def link_args(self, target: Cluster, name: str, extra_args: Sequence[str] = ()) -> list[str]:
        return [
            *self.isthmus,
            "multicluster",
            "link",
            *self._target(target),
            f"--cluster-name={name}",
            "--image-tag",
            self.image_tag,
            *extra_args,
        ]

    def link_render(
        self, target: Cluster, name: str, extra_args: Sequence[str] = ()
    ) -> tuple[int, str, str]:
        done = self.runner(self.link_args(target, name, extra_args), None, TIMEOUTS.mesh_command)
        return done.returncode, done.stdout, done.stderr

    def link(
        self,
        source: Cluster,
        target: Cluster,
        name: str | None = None,
        extra_args: Sequence[str] = (),
        edit: Edit | None = None,
        wait: bool = True,
    ) -> LinkRecord:
        name = name or target.name
        done = self._run(
            self.link_args(target, name, extra_args),
            f"[{target.name}] multicluster link --cluster-name={name}",
        )
        text = done.stdout
        if edit is not None:
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
            text = yaml.safe_dump_all(edit(docs), sort_keys=False)
        path = self._cluster_dir(source) / f"link-{name}.yaml"
        path.write_text(text)
        path.chmod(0o600)  # it carries the remote-access token
        self._apply(source, text, f"the link to {target.name} as {name}")
        if wait:
            self._rollout(source, mirror_controller(name), TIMEOUTS.link_ready)
        return LinkRecord(source.name, target.name, name, tuple(manifest_refs(text)))

    def unlink(self, source: Cluster, name: str) -> None:
        refs = self._run(
            [
                *self.isthmus,
                "multicluster",
                "unlink",
                *self._target(source),
                f"--cluster-name={name}",
            ],
            f"[{source.name}] multicluster unlink --cluster-name={name}",
        )
        self._run(
            self._kubectl(
                source,
                "delete",
                "--ignore-not-found",
                "--wait=true",
                f"--timeout={TIMEOUTS.mesh_uninstall:.0f}s",
                "-f",
                "-",
            ),
            f"[{source.name}] deleting what unlink names",
            input=refs.stdout,
            timeout=TIMEOUTS.mesh_uninstall + TIMEOUTS.mesh_command,
        )

    # -- inspection --------------------------------------------------------------------------

    def gateways(self, source: Cluster) -> list[GatewayRow]:
        done = self._run(
            [*self.isthmus, "multicluster", "gateways", *self._target(source)],
            f"[{source.name}] multicluster gateways",
        )
        return parse_gateways(done.stdout)

    def check_multicluster(self, cluster: Cluster, wait: float = 0) -> CheckResult:
        argv = [
            *self.isthmus,
            "check",
            "--multicluster",
            *self._target(cluster),
            "-o",
            "json",
            "--wait",
            f"{wait:.0f}s",
        ]
        done = self.runner(argv, None, wait + TIMEOUTS.mesh_command)
        return parse_check_json(cluster.name, done.stdout, done.stderr, done.returncode)

    def mirror_metrics(self, kube: Kube, link: str) -> str:
        selector = {**MIRROR_COMPONENT, CLUSTER_NAME_LABEL: link}
        pods = [
            p
            for p in kube.pods(MC_NAMESPACE, selector)
            if p.status is not None and p.status.phase == "Running" and p.metadata is not None
        ]
        if not pods:
            raise MeshError(
                f"[{kube.name}] no running mirror controller pod for link {link} "
                f"(labels {selector} in {MC_NAMESPACE})"
            )
        pod = str(pods[0].metadata.name)  # type: ignore[union-attr]
        r = kube.pod_proxy(MC_NAMESPACE, pod, MIRROR_METRICS_PORT, "/metrics")
        if r.status_code != 200:
            raise MeshError(
                f"[{kube.name}] metrics of mirror controller {pod} (port "
                f"{MIRROR_METRICS_PORT}) answered {r.status_code}: {r.text[:500]}"
            )
        return r.text

    def export(self, kube: Kube, namespace: str, service: str, mode: str | None) -> None:
        from lightkube.resources.core_v1 import Service

        if mode is not None and mode not in EXPORT_MODES:
            raise MeshError(f"unknown export mode {mode!r}; use one of {EXPORT_MODES}")
        kube.client.patch(
            Service, service, {"metadata": {"labels": {EXPORT_LABEL: mode}}}, namespace=namespace
        )
