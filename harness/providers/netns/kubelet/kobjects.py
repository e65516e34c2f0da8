"""The Kubernetes object shapes the kubelet stand-in reads, as ``TypedDict``s.

Pods arrive from lightkube as models and are converted once (``to_dict()``) at the
client edge; everything after that reads these camelCase dictionaries. What the
stand-in *writes* (pod status, events, the node) is plain JSON (:data:`JsonDict`).
"""

from __future__ import annotations

from typing import Any, TypedDict

JsonDict = dict[str, Any]


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    deletionTimestamp: str
    deletionGracePeriodSeconds: int
    resourceVersion: str
    creationTimestamp: str


class KeySelector(TypedDict, total=False):
    name: str
    key: str
    optional: bool


class ObjectFieldSelector(TypedDict, total=False):
    fieldPath: str
    apiVersion: str


class ResourceFieldSelector(TypedDict, total=False):
    containerName: str
    resource: str
    divisor: str


class EnvVarSource(TypedDict, total=False):
    fieldRef: ObjectFieldSelector
    resourceFieldRef: ResourceFieldSelector
    configMapKeyRef: KeySelector
    secretKeyRef: KeySelector


class EnvVar(TypedDict, total=False):
    name: str
    value: str
    valueFrom: EnvVarSource


class NameOptional(TypedDict, total=False):
    name: str
    optional: bool


class EnvFromSource(TypedDict, total=False):
    prefix: str
    configMapRef: NameOptional
    secretRef: NameOptional


class VolumeMount(TypedDict, total=False):
    name: str
    mountPath: str
    subPath: str
    subPathExpr: str
    readOnly: bool


class HTTPHeader(TypedDict):
    name: str
    value: str


class HTTPGetAction(TypedDict, total=False):
    path: str
    port: int | str
    host: str
    scheme: str
    httpHeaders: list[HTTPHeader]


class TCPSocketAction(TypedDict, total=False):
    port: int | str
    host: str


class ExecAction(TypedDict, total=False):
    command: list[str]


class Probe(TypedDict, total=False):
    httpGet: HTTPGetAction
    tcpSocket: TCPSocketAction
    exec: ExecAction
    initialDelaySeconds: int
    periodSeconds: int
    timeoutSeconds: int
    successThreshold: int
    failureThreshold: int
    terminationGracePeriodSeconds: int


class SleepAction(TypedDict, total=False):
    seconds: int


class LifecycleHandler(TypedDict, total=False):
    httpGet: HTTPGetAction
    tcpSocket: TCPSocketAction
    exec: ExecAction
    sleep: SleepAction


class Lifecycle(TypedDict, total=False):
    postStart: LifecycleHandler
    preStop: LifecycleHandler


class ContainerPort(TypedDict, total=False):
    name: str
    containerPort: int
    protocol: str


class SecurityContext(TypedDict, total=False):
    runAsUser: int
    runAsGroup: int
    runAsNonRoot: bool
    privileged: bool


class ResourceRequirements(TypedDict, total=False):
    limits: dict[str, str]
    requests: dict[str, str]


class Container(TypedDict, total=False):
    name: str
    image: str
    command: list[str]
    args: list[str]
    workingDir: str
    stdin: bool
    stdinOnce: bool
    tty: bool
    env: list[EnvVar]
    envFrom: list[EnvFromSource]
    volumeMounts: list[VolumeMount]
    ports: list[ContainerPort]
    readinessProbe: Probe
    livenessProbe: Probe
    startupProbe: Probe
    lifecycle: Lifecycle
    securityContext: SecurityContext
    resources: ResourceRequirements
    restartPolicy: str


class KeyToPath(TypedDict, total=False):
    key: str
    path: str
    mode: int


class ConfigMapVolumeSource(TypedDict, total=False):
    name: str
    items: list[KeyToPath]
    defaultMode: int
    optional: bool


class SecretVolumeSource(TypedDict, total=False):
    secretName: str
    items: list[KeyToPath]
    defaultMode: int
    optional: bool


class ProjectionSource(TypedDict, total=False):
    name: str
    items: list[KeyToPath]
    optional: bool


class DownwardAPIVolumeFile(TypedDict, total=False):
    path: str
    fieldRef: ObjectFieldSelector
    resourceFieldRef: ResourceFieldSelector
    mode: int


class DownwardAPIVolumeSource(TypedDict, total=False):
    items: list[DownwardAPIVolumeFile]
    defaultMode: int


class ServiceAccountTokenProjection(TypedDict, total=False):
    audience: str
    expirationSeconds: int
    path: str


class VolumeProjection(TypedDict, total=False):
    serviceAccountToken: ServiceAccountTokenProjection
    configMap: ProjectionSource
    secret: ProjectionSource
    downwardAPI: DownwardAPIVolumeSource


class ProjectedVolumeSource(TypedDict, total=False):
    sources: list[VolumeProjection]
    defaultMode: int


class EmptyDirVolumeSource(TypedDict, total=False):
    medium: str
    sizeLimit: str


class HostPathVolumeSource(TypedDict, total=False):
    path: str
    type: str


class Volume(TypedDict, total=False):
    name: str
    configMap: ConfigMapVolumeSource
    secret: SecretVolumeSource
    downwardAPI: DownwardAPIVolumeSource
    projected: ProjectedVolumeSource
    emptyDir: EmptyDirVolumeSource
    hostPath: HostPathVolumeSource


class PodSecurityContext(TypedDict, total=False):
    runAsUser: int
    runAsGroup: int
    fsGroup: int
    supplementalGroups: list[int]


class HostAlias(TypedDict, total=False):
    ip: str
    hostnames: list[str]


class DNSOption(TypedDict, total=False):
    name: str
    value: str


class PodDNSConfig(TypedDict, total=False):
    nameservers: list[str]
    searches: list[str]
    options: list[DNSOption]


class ReadinessGate(TypedDict):
    conditionType: str


class PodSpec(TypedDict, total=False):
    nodeName: str
    containers: list[Container]
    initContainers: list[Container]
    volumes: list[Volume]
    restartPolicy: str
    terminationGracePeriodSeconds: int
    hostNetwork: bool
    serviceAccountName: str
    hostname: str
    subdomain: str
    hostAliases: list[HostAlias]
    dnsPolicy: str
    dnsConfig: PodDNSConfig
    securityContext: PodSecurityContext
    readinessGates: list[ReadinessGate]


class PodCondition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    lastProbeTime: str | None


class PodStatus(TypedDict, total=False):
    phase: str
    podIP: str
    hostIP: str
    startTime: str
    conditions: list[PodCondition]
    containerStatuses: list[JsonDict]
    initContainerStatuses: list[JsonDict]


class Pod(TypedDict, total=False):
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


def pod_key(pod: Pod) -> str:
    """``namespace/name`` of a pod, for logs and messages."""
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
