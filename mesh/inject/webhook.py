"""The proxy injector's admission logic, sans-IO: AdmissionReview in, AdmissionReview out.

``decide`` says whether a pod is to be injected, from its annotations and its
namespace's (the pod's ``linkerd.io/inject`` wins over the namespace's). ``admit``
builds the whole response: for an injected pod a base64 JSON Patch (patchType
``JSONPatch``), otherwise no patch. It never refuses a pod: whatever goes wrong
(an unreadable namespace, a bad annotation) the pod is allowed unchanged with a
warning saying why, so the mesh never stands between a user and their pods.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesh.inject.config import InjectConfig
from mesh.inject.pod import OWNER_LABELS, InjectError, inject_pod, is_injected

__all__ = [
    "IGNORED_NAMESPACES",
    "Decision",
    "ReviewError",
    "admit",
    "allow",
    "decide",
    "effective_annotations",
    "owner_of",
    "parse_review",
]

Json = dict[str, Any]

INJECT = "linkerd.io/inject"
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
"""Namespaces whose pods are never injected, whatever they say."""
_ENABLED = ("enabled", "ingress")
_CONFIG_PREFIX = "config.linkerd.io/"


class ReviewError(ValueError):
    """A request body that is not an AdmissionReview v1 with a request."""


@dataclass(frozen=True)
class Decision:
    """Whether to inject, and why (said in logs and, when not, in nothing else)."""

    inject: bool
    reason: str


def decide(
    pod: Mapping[str, Any], namespace: str, namespace_annotations: Mapping[str, str]
) -> Decision:
    """Inject ``pod`` (in ``namespace``, annotated ``namespace_annotations``)?"""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if namespace in IGNORED_NAMESPACES:
        return Decision(False, f"pods in {namespace} are never injected")
    if is_injected(pod):
        return Decision(False, "the pod already has a proxy")
    if spec.get("hostNetwork"):
        return Decision(False, "hostNetwork is enabled")
    pod_value = (meta.get("annotations") or {}).get(INJECT)
    if pod_value in _ENABLED:
        return Decision(True, f"the pod is annotated {INJECT}: {pod_value}")
    if pod_value == "disabled":
        return Decision(False, f"the pod is annotated {INJECT}: disabled")
    ns_value = namespace_annotations.get(INJECT)
    if ns_value in _ENABLED:
        return Decision(True, f"namespace {namespace} is annotated {INJECT}: {ns_value}")
    return Decision(False, f"neither the pod nor namespace {namespace} enables injection")


def effective_annotations(
    pod: Mapping[str, Any], namespace_annotations: Mapping[str, str]
) -> dict[str, str]:
    """The namespace's ``config.linkerd.io/*`` annotations overridden by the pod's annotations."""
    inherited = {k: v for k, v in namespace_annotations.items() if k.startswith(_CONFIG_PREFIX)}
    own = (pod.get("metadata") or {}).get("annotations") or {}
    return {**inherited, **{str(k): str(v) for k, v in own.items()}}


def owner_of(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (kind, name) of the workload that owns ``pod``, from its controller reference.

    A ReplicaSet made by a Deployment (its name ends with the pod's
    ``pod-template-hash``) counts as that Deployment, without asking the API.
    """
    meta = pod.get("metadata") or {}
    refs = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
    if not refs:
        return None
    kind, name = str(refs[0].get("kind", "")), str(refs[0].get("name", ""))
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return "Deployment", name[: -len(template_hash) - 1]
    return (kind, name) if kind in OWNER_LABELS else None


def parse_review(body: bytes) -> Json:
    """The ``request`` of an AdmissionReview v1 body; ``ReviewError`` if it is not one."""
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ReviewError(f"the body is not JSON: {e}") from None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise ReviewError("the body is not an AdmissionReview")
    request = review.get("request")
    if not isinstance(request, dict) or not request.get("uid"):
        raise ReviewError("the AdmissionReview has no request uid")
    return request


def _response(uid: str, patch: list[Json] | None = None, warnings: list[str] | None = None) -> Json:
    response: Json = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def allow(uid: str, warning: str | None = None) -> Json:
    """Allow unchanged, optionally with a warning for the user."""
    return _response(uid, warnings=[warning] if warning else None)


def admit(
    request: Mapping[str, Any],
    namespace_annotations: Mapping[str, str] | None,
    config: InjectConfig,
) -> tuple[Json, Decision]:
    """The AdmissionReview answering ``request``, and the decision behind it.

    ``namespace_annotations`` is ``None`` when the namespace could not be read;
    the pod is then judged on its own annotations, with a warning.
    """
    uid = str(request["uid"])
    resource = request.get("resource") or {}
    pod = request.get("object")
    if resource.get("resource") != "pods" or request.get("operation") != "CREATE":
        return allow(uid), Decision(False, "not a pod creation")
    if not isinstance(pod, dict):
        return allow(uid), Decision(False, "no pod in the request")
    namespace = str(request.get("namespace") or (pod.get("metadata") or {}).get("namespace", ""))
    warnings = []
    if namespace_annotations is None:
        warnings.append(f"linkerd-proxy-injector could not read namespace {namespace}")
    decision = decide(pod, namespace, namespace_annotations or {})
    if not decision.inject:
        return _response(uid, warnings=warnings), decision
    annotations = effective_annotations(pod, namespace_annotations or {})
    try:
        _, patch = inject_pod(
            pod, annotations, config, namespace=namespace or None, owner=owner_of(pod)
        )
    except InjectError as e:
        warning = f"linkerd-proxy-injector did not inject the pod: {e}"
        return _response(uid, warnings=[*warnings, warning]), Decision(False, str(e))
    return _response(uid, patch, warnings), decision
