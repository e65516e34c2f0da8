"""``isthmus inject`` over manifests: find each pod template and annotate or inject it.

Handles multi-document streams, ``List`` objects, Pods and every workload with a
pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job, CronJob). Other objects pass through unchanged.

Without ``manual`` the pod template gets ``linkerd.io/inject: enabled`` (and a
Namespace gets it too), leaving the work to the webhook, as ``linkerd inject``
does. With ``manual`` the proxy is added here via ``inject_pod``. Either way
``linkerd.io/inject: disabled`` on the object or its template, or a host-network
pod, leaves the object as it was. Pure: documents in, documents and a report out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesh.inject.config import InjectConfig
from mesh.inject.pod import InjectError, inject_pod, is_injected

__all__ = ["INJECT", "TEMPLATE_PATHS", "Outcome", "inject_documents"]

INJECT = "linkerd.io/inject"
_ENABLED = ("enabled", "ingress")

TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
"""Kind -> where its pod (template) is; ``()`` for a Pod itself."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one object.

    ``result`` is ``injected``, ``annotated``, ``unchanged``, ``skipped`` or ``failed``.
    """

    kind: str
    name: str
    result: str
    reason: str = ""

    def __str__(self) -> str:
        text = f'{self.kind.lower()} "{self.name}" {self.result}'
        return f"{text}: {self.reason}" if self.reason else text


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}


def _template(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _namespace(doc: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
    name = str((doc.get("metadata") or {}).get("name", ""))
    value = _annotations(doc).get(INJECT)
    if value == "disabled":
        return doc, Outcome("Namespace", name, "skipped", f"{INJECT}: disabled")
    if value in _ENABLED:
        return doc, Outcome("Namespace", name, "unchanged", "already annotated")
    doc = copy.deepcopy(doc)
    meta = doc.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), INJECT: "enabled"}
    return doc, Outcome("Namespace", name, "annotated")


def _workload(
    doc: dict[str, Any], config: InjectConfig | None, manual: bool
) -> tuple[dict[str, Any], Outcome]:
    kind = str(doc["kind"])
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", ""))
    doc = copy.deepcopy(doc)
    template = _template(doc, TEMPLATE_PATHS[kind])
    if template is None:
        return doc, Outcome(kind, name, "skipped", "no pod template")
    template_annotations = _annotations(template)
    wanted = template_annotations.get(INJECT, _annotations(doc).get(INJECT))
    if wanted == "disabled":
        return doc, Outcome(kind, name, "skipped", f"{INJECT}: disabled")
    if (template.get("spec") or {}).get("hostNetwork"):
        return doc, Outcome(kind, name, "skipped", "hostNetwork is enabled")
    if is_injected(template):
        return doc, Outcome(kind, name, "unchanged", "already injected")
    if not manual:
        if template_annotations.get(INJECT) in _ENABLED:
            return doc, Outcome(kind, name, "unchanged", "already annotated")
        tmeta = template.setdefault("metadata", {})
        tmeta["annotations"] = {**(tmeta.get("annotations") or {}), INJECT: "enabled"}
        return doc, Outcome(kind, name, "annotated")
    assert config is not None, "manual injection needs the mesh's configuration"
    namespace = meta.get("namespace")
    owner = None if kind == "Pod" else (kind, name)
    injected, _ = inject_pod(
        template, template_annotations, config, namespace=namespace, owner=owner
    )
    template.clear()
    template.update(injected)
    return doc, Outcome(kind, name, "injected")


def _transform(doc: Any, config: InjectConfig | None, manual: bool) -> tuple[Any, list[Outcome]]:
    if not isinstance(doc, dict):
        return doc, []
    kind = doc.get("kind")
    if kind == "List" and isinstance(doc.get("items"), list):
        items: list[Any] = []
        outcomes: list[Outcome] = []
        for item in doc["items"]:
            new, reports = _transform(item, config, manual)
            items.append(new)
            outcomes += reports
        return {**doc, "items": items}, outcomes
    if kind == "Namespace" and not manual:
        new, outcome = _namespace(doc)
        return new, [outcome]
    if kind in TEMPLATE_PATHS:
        try:
            new, outcome = _workload(doc, config, manual)
        except InjectError as e:
            name = str((doc.get("metadata") or {}).get("name", ""))
            new, outcome = doc, Outcome(str(kind), name, "failed", str(e))
        return new, [outcome]
    return doc, []


def inject_documents(
    docs: list[Any], config: InjectConfig | None, *, manual: bool
) -> tuple[list[Any], list[Outcome]]:
    """The documents with every injectable pod template annotated (or, ``manual``, injected)."""
    if manual and config is None:
        raise ValueError("manual injection needs an InjectConfig")
    out: list[Any] = []
    outcomes: list[Outcome] = []
    for doc in docs:
        new, reports = _transform(doc, config, manual)
        out.append(new)
        outcomes += reports
    return out, outcomes
