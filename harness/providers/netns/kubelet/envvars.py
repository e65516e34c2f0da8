"""A container's environment, resolved the way the kubelet does it (pure).

Rules (from upstream ``makeEnvironmentVariables``):
- ``envFrom`` sources first, in order, later keys win; their values are not expanded.
- then ``env``, in order; each value expands ``$(VAR)`` against the variables defined
  so far and the service variables; ``$$`` is a literal ``$``; an undefined
  reference stays as written.
- service variables (``KUBERNETES_SERVICE_HOST``…) fill in names not set otherwise.
- a missing non-optional ConfigMap/Secret/key is an error naming what is missing;
  the container then waits with ``CreateContainerConfigError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.providers.netns.kubelet.kobjects import (
    Container,
    KeySelector,
    Pod,
    ResourceFieldSelector,
)

#: name -> key -> value; ``None`` means the object does not exist.
ObjectData = Mapping[str, Mapping[str, bytes] | None]


class MissingReference(Exception):
    """A non-optional ConfigMap, Secret or key that the pod refers to does not exist."""


@dataclass(frozen=True)
class EnvInputs:
    """What env resolution needs from outside the pod spec."""

    configmaps: ObjectData = field(default_factory=dict)
    secrets: ObjectData = field(default_factory=dict)
    pod_ip: str = ""
    host_ip: str = ""
    service_env: Mapping[str, str] = field(default_factory=dict)


def expand(text: str, lookup: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(lookup[name] if name in lookup else text[i : end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def service_env(cluster_ip: str, port: int) -> dict[str, str]:
    """The variables every container gets for the ``default/kubernetes`` Service."""
    url = f"tcp://{cluster_ip}:{port}"
    return {
        "KUBERNETES_SERVICE_HOST": cluster_ip,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": url,
        f"KUBERNETES_PORT_{port}_TCP": url,
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": str(port),
        f"KUBERNETES_PORT_{port}_TCP_ADDR": cluster_ip,
    }


def _format_map(values: Mapping[str, str]) -> str:
    """Labels/annotations as the downward API writes them: ``key="value"`` lines."""

    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    return "\n".join(f"{k}={quote(v)}" for k, v in sorted(values.items()))


def pod_field(pod: Pod, path: str, pod_ip: str = "", host_ip: str = "") -> str:
    """The value of a downward-API ``fieldRef.fieldPath``."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple: dict[str, str] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    if path == "metadata.labels":
        return _format_map(meta.get("labels") or {})
    if path == "metadata.annotations":
        return _format_map(meta.get("annotations") or {})
    for prefix, key in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            table: dict[str, str] | None = (
                meta.get("labels") if key == "labels" else meta.get("annotations")
            )
            return table.get(path[len(prefix) + 2 : -2], "") if table else ""
    raise MissingReference(f"unsupported fieldRef {path!r}")


_BINARY_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIX = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}


def parse_quantity(q: str) -> float:
    """A resource quantity (``100m``, ``64Mi``, ``2``) as a number."""
    q = q.strip()
    for suffix, mult in _BINARY_SUFFIX.items():
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * mult
    num = q.rstrip("numkMGTPE")
    return float(num) * _DECIMAL_SUFFIX[q[len(num) :]]


#: what an unset limit reads as (the node's allocatable, as Kubernetes does).
NODE_ALLOCATABLE = {"cpu": "8", "memory": "16Gi", "ephemeral-storage": "100Gi"}


def resource_field(container: Container, ref: ResourceFieldSelector) -> str:
    """``resourceFieldRef``: a request or limit, divided and rounded up (best effort)."""
    kind, _, resource = ref.get("resource", "").partition(".")
    res = container.get("resources")
    values: dict[str, str] = {}
    if res is not None:
        values = (res.get("limits") if kind == "limits" else res.get("requests")) or {}
    raw = values.get(resource)
    if raw is None:
        raw = NODE_ALLOCATABLE.get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1") or 1.0
    return str(math.ceil(parse_quantity(raw) / divisor))


def _lookup(data: ObjectData, kind: str, namespace: str, sel: KeySelector) -> str | None:
    name, key, optional = sel.get("name", ""), sel.get("key", ""), sel.get("optional", False)
    obj = data.get(name)
    if obj is None:
        if optional:
            return None
        raise MissingReference(f'{kind} "{name}" not found')
    if key not in obj:
        if optional:
            return None
        raise MissingReference(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return obj[key].decode("utf-8", errors="replace")


def resolve_env(pod: Pod, container: Container, inputs: EnvInputs) -> dict[str, str]:
    """The container's environment, in definition order; raise :class:`MissingReference`."""
    namespace = pod.get("metadata", {}).get("namespace", "")
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, ref, data in (
            ("configmap", src.get("configMapRef"), inputs.configmaps),
            ("secret", src.get("secretRef"), inputs.secrets),
        ):
            if ref is None:
                continue
            obj = data.get(ref.get("name", ""))
            if obj is None:
                if ref.get("optional", False):
                    continue
                raise MissingReference(f'{kind} "{ref.get("name", "")}" not found')
            for key, raw in obj.items():
                if "=" not in key:
                    env[prefix + key] = raw.decode("utf-8", errors="replace")
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "value" in var:
            env[name] = expand(var["value"], {**inputs.service_env, **env})
            continue
        source = var.get("valueFrom")
        if source is None:
            env[name] = ""
            continue
        value: str | None
        if "fieldRef" in source:
            value = pod_field(
                pod, source["fieldRef"].get("fieldPath", ""), inputs.pod_ip, inputs.host_ip
            )
        elif "resourceFieldRef" in source:
            value = resource_field(container, source["resourceFieldRef"])
        elif "configMapKeyRef" in source:
            value = _lookup(inputs.configmaps, "configmap", namespace, source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = _lookup(inputs.secrets, "secret", namespace, source["secretKeyRef"])
        else:
            value = ""
        if value is not None:
            env[name] = value
    for name, value in inputs.service_env.items():
        env.setdefault(name, value)
    return env


def referenced_objects(pod: Pod) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets the env of any container refers to."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    spec = pod.get("spec", {})
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                configmaps.add(src["configMapRef"].get("name", ""))
            if "secretRef" in src:
                secrets.add(src["secretRef"].get("name", ""))
        for var in c.get("env") or []:
            vf = var.get("valueFrom") or {}
            if "configMapKeyRef" in vf:
                configmaps.add(vf["configMapKeyRef"].get("name", ""))
            if "secretKeyRef" in vf:
                secrets.add(vf["secretKeyRef"].get("name", ""))
    return configmaps, secrets
