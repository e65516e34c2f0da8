"""What each volume of a pod contains and where containers see it (pure).

A volume plan is the complete file set of a volume (paths relative to the volume,
bytes, modes), computed from the pod spec and the objects fetched for it; the IO
layer (:mod:`.volumes`) writes it atomically and rewrites it when a token is renewed
or a source changes. Rules:
- ConfigMap/Secret volumes with ``items`` contain only those keys; a missing
  non-optional object or key raises :class:`MissingReference` (the pod then waits).
- ``defaultMode`` is 0644 unless given; an item's ``mode`` wins.
- Service-account tokens are looked up by (audience, expirationSeconds); the IO layer
  requests them (see :func:`token_sources`) before planning.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from harness.providers.netns.kubelet.envvars import (
    MissingReference,
    ObjectData,
    expand,
    pod_field,
    resource_field,
)
from harness.providers.netns.kubelet.kobjects import (
    Container,
    DownwardAPIVolumeFile,
    KeyToPath,
    Pod,
    Volume,
)
from harness.providers.netns.kubelet.launch import Mount

DEFAULT_MODE = 0o644
#: Kubernetes' default lifetime of a projected service-account token.
DEFAULT_TOKEN_SECONDS = 3607
#: the API server's default audience when a projection names none.
DEFAULT_AUDIENCE = ""


class VolumeKind(Enum):
    FILES = "files"
    EMPTY_DIR = "emptyDir"
    HOST_PATH = "hostPath"


@dataclass(frozen=True)
class FileEntry:
    data: bytes
    mode: int = DEFAULT_MODE


@dataclass(frozen=True)
class TokenSource:
    """A projected service-account token: what to request and where it goes."""

    audience: str
    expiration_seconds: int
    path: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.audience, self.expiration_seconds)


@dataclass(frozen=True)
class VolumeInputs:
    configmaps: ObjectData = field(default_factory=dict)
    secrets: ObjectData = field(default_factory=dict)
    #: (audience, expirationSeconds) -> token
    tokens: Mapping[tuple[str, int], str] = field(default_factory=dict)
    pod_ip: str = ""
    host_ip: str = ""


@dataclass(frozen=True)
class VolumePlan:
    name: str
    kind: VolumeKind
    files: dict[str, FileEntry] = field(default_factory=dict)
    host_path: str = ""


def token_sources(volume: Volume) -> list[TokenSource]:
    """The service-account tokens a (projected) volume needs."""
    out = []
    for src in (volume.get("projected") or {}).get("sources") or []:
        sat = src.get("serviceAccountToken")
        if sat is not None:
            out.append(
                TokenSource(
                    audience=sat.get("audience", DEFAULT_AUDIENCE),
                    expiration_seconds=sat.get("expirationSeconds", DEFAULT_TOKEN_SECONDS),
                    path=sat.get("path", "token"),
                )
            )
    return out


def volume_objects(pod: Pod) -> tuple[set[str], set[str]]:
    """Names of ConfigMaps and Secrets the pod's volumes refer to."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    for vol in pod.get("spec", {}).get("volumes") or []:
        if "configMap" in vol:
            configmaps.add(vol["configMap"].get("name", ""))
        if "secret" in vol:
            secrets.add(vol["secret"].get("secretName", ""))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if "configMap" in src:
                configmaps.add(src["configMap"].get("name", ""))
            if "secret" in src:
                secrets.add(src["secret"].get("name", ""))
    return configmaps, secrets


def _key_files(
    kind: str,
    namespace: str,
    name: str,
    data: Mapping[str, bytes] | None,
    items: list[KeyToPath] | None,
    mode: int,
    optional: bool,
) -> dict[str, FileEntry]:
    if data is None:
        if optional:
            return {}
        raise MissingReference(f'{kind} "{name}" not found')
    if not items:
        return {key: FileEntry(value, mode) for key, value in data.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise MissingReference(f"couldn't find key {key} in {kind} {namespace}/{name}")
        out[item.get("path", key)] = FileEntry(data[key], item.get("mode", mode))
    return out


def _downward_files(
    pod: Pod, items: list[DownwardAPIVolumeFile], mode: int, inputs: VolumeInputs
) -> dict[str, FileEntry]:
    out = {}
    containers = {c.get("name", ""): c for c in pod.get("spec", {}).get("containers") or []}
    for item in items:
        if "fieldRef" in item:
            value = pod_field(
                pod, item["fieldRef"].get("fieldPath", ""), inputs.pod_ip, inputs.host_ip
            )
        elif "resourceFieldRef" in item:
            ref = item["resourceFieldRef"]
            container: Container = containers.get(ref.get("containerName", ""), {})
            value = resource_field(container, ref)
        else:
            continue
        out[item.get("path", "")] = FileEntry(value.encode(), item.get("mode", mode))
    return out


def plan_volume(pod: Pod, volume: Volume, inputs: VolumeInputs) -> VolumePlan:
    """The content of ``volume``; raise :class:`MissingReference` when a source is missing."""
    name = volume.get("name", "")
    ns = pod.get("metadata", {}).get("namespace", "")
    if "emptyDir" in volume:
        return VolumePlan(name, VolumeKind.EMPTY_DIR)
    if "hostPath" in volume:
        return VolumePlan(name, VolumeKind.HOST_PATH, host_path=volume["hostPath"].get("path", ""))
    if "configMap" in volume:
        cm = volume["configMap"]
        cm_name = cm.get("name", "")
        return VolumePlan(
            name,
            VolumeKind.FILES,
            _key_files(
                "configmap",
                ns,
                cm_name,
                inputs.configmaps.get(cm_name),
                cm.get("items"),
                cm.get("defaultMode", DEFAULT_MODE),
                cm.get("optional", False),
            ),
        )
    if "secret" in volume:
        sec = volume["secret"]
        sec_name = sec.get("secretName", "")
        return VolumePlan(
            name,
            VolumeKind.FILES,
            _key_files(
                "secret",
                ns,
                sec_name,
                inputs.secrets.get(sec_name),
                sec.get("items"),
                sec.get("defaultMode", DEFAULT_MODE),
                sec.get("optional", False),
            ),
        )
    if "downwardAPI" in volume:
        dapi = volume["downwardAPI"]
        return VolumePlan(
            name,
            VolumeKind.FILES,
            _downward_files(
                pod, dapi.get("items") or [], dapi.get("defaultMode", DEFAULT_MODE), inputs
            ),
        )
    if "projected" in volume:
        proj = volume["projected"]
        mode = proj.get("defaultMode", DEFAULT_MODE)
        files: dict[str, FileEntry] = {}
        for src in proj.get("sources") or []:
            if "serviceAccountToken" in src:
                (tok,) = token_sources({"projected": {"sources": [src]}})
                token = inputs.tokens.get(tok.key)
                if token is None:
                    raise MissingReference(
                        f"no service account token for audience {tok.audience!r} yet"
                    )
                files[tok.path] = FileEntry(token.encode(), mode)
            if "configMap" in src:
                ref = src["configMap"]
                files.update(
                    _key_files(
                        "configmap",
                        ns,
                        ref.get("name", ""),
                        inputs.configmaps.get(ref.get("name", "")),
                        ref.get("items"),
                        mode,
                        ref.get("optional", False),
                    )
                )
            if "secret" in src:
                ref = src["secret"]
                files.update(
                    _key_files(
                        "secret",
                        ns,
                        ref.get("name", ""),
                        inputs.secrets.get(ref.get("name", "")),
                        ref.get("items"),
                        mode,
                        ref.get("optional", False),
                    )
                )
            if "downwardAPI" in src:
                files.update(
                    _downward_files(pod, src["downwardAPI"].get("items") or [], mode, inputs)
                )
        return VolumePlan(name, VolumeKind.FILES, files)
    raise MissingReference(
        f"volume {name!r} has a source this kubelet does not support "
        "(supported: projected, configMap, secret, downwardAPI, emptyDir, "
        "hostPath)"
    )


def plan_volumes(pod: Pod, inputs: VolumeInputs) -> list[VolumePlan]:
    return [plan_volume(pod, v, inputs) for v in pod.get("spec", {}).get("volumes") or []]


def container_mounts(
    pod: Pod,
    container: Container,
    source_of: Callable[[str], Path],
    is_file: Callable[[Path], bool],
    env: Mapping[str, str],
    always_readonly: Collection[str] = (),
) -> list[Mount]:
    """The bind mounts of one container; ``source_of(volume)`` is where a volume lives.

    Volumes named in ``always_readonly`` (the API-object ones) mount read-only whatever
    the mount says, as in Kubernetes.
    """
    out = []
    for vm in container.get("volumeMounts") or []:
        source = source_of(vm.get("name", ""))
        sub = vm.get("subPath") or expand(vm.get("subPathExpr", ""), env)
        if sub:
            if sub.startswith("/") or ".." in Path(sub).parts:
                raise MissingReference(
                    f"invalid subPath {sub!r} in volume mount {vm.get('name', '')!r}"
                )
            source = source / sub
        out.append(
            Mount(
                source=str(source),
                target=vm.get("mountPath", ""),
                readonly=vm.get("readOnly", False) or vm.get("name", "") in always_readonly,
                kind="file" if is_file(source) else "dir",
            )
        )
    return out
