"""Pod status from what the kubelet knows about its containers (pure).

The worker keeps one :class:`ContainerView` per container; :func:`compute_status`
turns a :class:`PodView` into the ``status`` written to the API. Rules follow the
upstream kubelet (``getPhase``, ``generateContainersReadyCondition`` …):
- a container waiting *after* having terminated (back-off) counts as stopped, not
  waiting, so a crash-looping pod is Running, not Pending;
- with all containers stopped: Always → Running, all exit 0 → Succeeded,
  Never → Failed, OnFailure → Running (it restarts the failed ones);
- a terminal phase never changes again;
- a condition keeps its ``lastTransitionTime`` while its status is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from harness.providers.netns.kubelet.kobjects import JsonDict, PodCondition, PodStatus

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL = (SUCCEEDED, FAILED)


def rfc3339(epoch: float | None = None) -> str:
    """Kubernetes' timestamp format (second precision, UTC)."""
    when = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: str


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    container_id: str = ""
    message: str = ""
    signal: int | None = None


ContainerState = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerView:
    name: str
    image: str
    image_id: str
    state: ContainerState
    last_state: Terminated | None = None
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str = ""


@dataclass(frozen=True)
class PodView:
    containers: Sequence[ContainerView]
    init_containers: Sequence[ContainerView] = ()
    restart_policy: str = "Always"
    pod_ip: str = ""
    host_ip: str = ""
    start_time: str = ""
    sandbox_ready: bool = False
    #: every regular init container completed and every sidecar started
    initialized: bool = True
    #: a regular init container failed and will not be retried
    init_failed: bool = False
    #: sticky once reached
    terminal_phase: str | None = None
    readiness_gates: Sequence[str] = ()
    gate_status: Mapping[str, bool] = field(default_factory=dict)
    #: init containers with ``restartPolicy: Always``; their readiness counts too
    sidecars: frozenset[str] = frozenset()


def state_json(state: ContainerState) -> JsonDict:
    if isinstance(state, Waiting):
        waiting: JsonDict = {"reason": state.reason}
        if state.message:
            waiting["message"] = state.message
        return {"waiting": waiting}
    if isinstance(state, Running):
        return {"running": {"startedAt": state.started_at}}
    term: JsonDict = {
        "exitCode": state.exit_code,
        "reason": state.reason,
        "startedAt": state.started_at,
        "finishedAt": state.finished_at,
    }
    if state.container_id:
        term["containerID"] = state.container_id
    if state.message:
        term["message"] = state.message
    if state.signal is not None:
        term["signal"] = state.signal
    return {"terminated": term}


def container_status_json(view: ContainerView) -> JsonDict:
    out: JsonDict = {
        "name": view.name,
        "image": view.image,
        "imageID": view.image_id,
        "state": state_json(view.state),
        "lastState": state_json(view.last_state) if view.last_state else {},
        "ready": view.ready,
        "started": view.started,
        "restartCount": view.restart_count,
    }
    if view.container_id:
        out["containerID"] = view.container_id
    return out


def compute_phase(view: PodView) -> str:
    if view.terminal_phase in TERMINAL:
        return view.terminal_phase
    if view.init_failed:
        return FAILED
    if not view.initialized:
        return PENDING
    running = waiting = stopped = succeeded = 0
    for c in view.containers:
        if isinstance(c.state, Running):
            running += 1
        elif isinstance(c.state, Terminated):
            stopped += 1
            succeeded += c.state.exit_code == 0
        elif c.last_state is not None:
            stopped += 1
            succeeded += c.last_state.exit_code == 0
        else:
            waiting += 1
    if waiting:
        return PENDING
    if running:
        return RUNNING
    if stopped:
        if view.restart_policy == "Always":
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if view.restart_policy == "Never":
            return FAILED
        return RUNNING
    return PENDING


def _condition(
    ctype: str,
    ok: bool,
    previous: Mapping[str, PodCondition],
    now: str,
    reason: str = "",
    message: str = "",
) -> JsonDict:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: JsonDict = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since or now,
    }
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def _names(views: Sequence[ContainerView]) -> str:
    return "[" + " ".join(v.name for v in views) + "]"


def compute_conditions(
    view: PodView, phase: str, previous: Sequence[PodCondition], now: str
) -> list[JsonDict]:
    prev = {c.get("type", ""): c for c in previous}
    unready = [c for c in view.init_containers if c.name in view.sidecars and not c.ready]
    unready += [c for c in view.containers if not c.ready]
    incomplete = [
        c
        for c in view.init_containers
        if not (isinstance(c.state, Terminated) and c.state.exit_code == 0) and not c.started
    ]
    completed = phase in TERMINAL
    gates_ok = all(view.gate_status.get(g, False) for g in view.readiness_gates)
    if completed:
        ready_reason, ready_msg = "PodCompleted", ""
    elif unready:
        ready_reason = "ContainersNotReady"
        ready_msg = f"containers with unready status: {_names(unready)}"
    else:
        ready_reason = "ReadinessGatesNotReady"
        ready_msg = "corresponding condition of pod readiness gate is not True"
    containers_ready = not unready and not completed
    conditions = [
        _condition("PodReadyToStartContainers", view.sandbox_ready and not completed, prev, now),
        _condition(
            "Initialized",
            view.initialized,
            prev,
            now,
            "ContainersNotInitialized",
            f"containers with incomplete status: {_names(incomplete)}",
        ),
        _condition("Ready", containers_ready and gates_ok, prev, now, ready_reason, ready_msg),
        _condition(
            "ContainersReady",
            containers_ready,
            prev,
            now,
            "PodCompleted" if completed else "ContainersNotReady",
            "" if completed else f"containers with unready status: {_names(unready)}",
        ),
        _condition("PodScheduled", True, prev, now),
    ]
    known = {c["type"] for c in conditions}
    conditions.extend(dict(c) for c in previous if c.get("type") not in known)
    return conditions


def compute_status(view: PodView, previous: PodStatus, now: str) -> JsonDict:
    """The pod's ``status`` (for a merge patch of the status subresource)."""
    phase = compute_phase(view)
    status: JsonDict = {
        "phase": phase,
        "conditions": compute_conditions(view, phase, previous.get("conditions") or [], now),
        "containerStatuses": [container_status_json(c) for c in view.containers],
    }
    if view.init_containers:
        status["initContainerStatuses"] = [container_status_json(c) for c in view.init_containers]
    if view.host_ip:
        status["hostIP"] = view.host_ip
        status["hostIPs"] = [{"ip": view.host_ip}]
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    start = previous.get("startTime") or view.start_time
    if start:
        status["startTime"] = start
    return status


def gate_status_of(previous: PodStatus) -> dict[str, bool]:
    """Readiness-gate condition values other controllers wrote into the status."""
    return {c.get("type", ""): c.get("status") == "True" for c in previous.get("conditions") or []}
