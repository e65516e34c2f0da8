"""Pod phase, conditions and container statuses from the kubelet's view."""

from __future__ import annotations

import pytest

from harness.providers.netns.kubelet.podstatus import (
    ContainerView,
    PodView,
    Running,
    Terminated,
    Waiting,
    compute_phase,
    compute_status,
    container_status_json,
)

T0, T1 = "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"


def running(name: str = "c", ready: bool = True) -> ContainerView:
    return ContainerView(
        name,
        "isthmus/testapps",
        "id",
        Running(T0),
        ready=ready,
        started=True,
        container_id="isthmus://10",
    )


def exited(code: int, name: str = "c") -> ContainerView:
    return ContainerView(
        name, "img", "id", Terminated(code, "Error" if code else "Completed", T0, T1)
    )


def backing_off(last_code: int, name: str = "c") -> ContainerView:
    return ContainerView(
        name,
        "img",
        "id",
        Waiting("CrashLoopBackOff"),
        last_state=Terminated(last_code, "Error", T0, T1),
        restart_count=1,
    )


def waiting(name: str = "c") -> ContainerView:
    return ContainerView(name, "img", "id", Waiting("ContainerCreating"))


@pytest.mark.parametrize(
    ("view", "phase"),
    [
        pytest.param(PodView([waiting()]), "Pending", id="creating"),
        pytest.param(PodView([running()]), "Running", id="running"),
        pytest.param(PodView([running(), waiting("b")]), "Pending", id="one-still-waiting"),
        pytest.param(PodView([backing_off(1)]), "Running", id="crash-loop-is-running"),
        pytest.param(
            PodView([exited(0)], restart_policy="Always"), "Running", id="always-restarts"
        ),
        pytest.param(
            PodView([exited(0), exited(0, "b")], restart_policy="Never"),
            "Succeeded",
            id="all-succeeded",
        ),
        pytest.param(
            PodView([exited(0), exited(1, "b")], restart_policy="Never"),
            "Failed",
            id="never-failed",
        ),
        pytest.param(
            PodView([exited(1)], restart_policy="OnFailure"), "Running", id="on-failure-restarts"
        ),
        pytest.param(
            PodView([exited(0)], restart_policy="OnFailure"), "Succeeded", id="on-failure-succeeded"
        ),
        pytest.param(PodView([waiting()], initialized=False), "Pending", id="initializing"),
        pytest.param(
            PodView([waiting()], initialized=False, init_failed=True), "Failed", id="init-failed"
        ),
        pytest.param(
            PodView([running()], terminal_phase="Succeeded"), "Succeeded", id="terminal-is-sticky"
        ),
    ],
)
def test_phase(view: PodView, phase: str) -> None:
    assert compute_phase(view) == phase


def conditions(status: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in status["conditions"]}  # type: ignore[attr-defined]


def test_ready_pod_status() -> None:
    view = PodView(
        [running()], pod_ip="10.42.0.5", host_ip="172.18.0.2", start_time=T0, sandbox_ready=True
    )
    status = compute_status(view, {}, T1)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.42.0.5"
    assert status["podIPs"] == [{"ip": "10.42.0.5"}]
    assert status["hostIPs"] == [{"ip": "172.18.0.2"}]
    assert status["startTime"] == T0
    conds = conditions(status)
    assert {t: c["status"] for t, c in conds.items()} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert status["containerStatuses"] == [
        {
            "name": "c",
            "image": "isthmus/testapps",
            "imageID": "id",
            "state": {"running": {"startedAt": T0}},
            "lastState": {},
            "ready": True,
            "started": True,
            "restartCount": 0,
            "containerID": "isthmus://10",
        }
    ]


def test_unready_names_the_containers() -> None:
    status = compute_status(
        PodView([running("a", ready=False), running("b")], sandbox_ready=True), {}, T1
    )
    ready = conditions(status)["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [a]"


def test_transition_times_survive_while_status_is_unchanged() -> None:
    view = PodView([running()], sandbox_ready=True)
    first = compute_status(view, {}, T0)
    second = compute_status(view, first, T1)  # type: ignore[arg-type]
    assert conditions(second)["Ready"]["lastTransitionTime"] == T0
    unready = PodView([running(ready=False)], sandbox_ready=True)
    third = compute_status(unready, second, T1)  # type: ignore[arg-type]
    assert conditions(third)["Ready"]["lastTransitionTime"] == T1
    assert conditions(third)["PodScheduled"]["lastTransitionTime"] == T0


def test_readiness_gates_hold_ready_and_foreign_conditions_are_kept() -> None:
    view = PodView([running()], sandbox_ready=True, readiness_gates=["example.com/gate"])
    status = compute_status(
        view, {"conditions": [{"type": "example.com/gate", "status": "False"}]}, T0
    )
    conds = conditions(status)
    assert conds["Ready"]["status"] == "False"
    assert conds["ContainersReady"]["status"] == "True"
    assert conds["example.com/gate"]["status"] == "False"
    opened = PodView(
        [running()],
        sandbox_ready=True,
        readiness_gates=["example.com/gate"],
        gate_status={"example.com/gate": True},
    )
    assert conditions(compute_status(opened, {}, T0))["Ready"]["status"] == "True"


def test_initializing_pod_lists_incomplete_init_containers() -> None:
    view = PodView(
        [waiting()],
        init_containers=[exited(0, "first"), waiting("second")],
        initialized=False,
        sandbox_ready=True,
    )
    status = compute_status(view, {}, T0)
    init = conditions(status)["Initialized"]
    assert init["status"] == "False"
    assert init["message"] == "containers with incomplete status: [second]"
    assert [s["name"] for s in status["initContainerStatuses"]] == ["first", "second"]


def test_completed_pod_is_not_ready_with_pod_completed() -> None:
    status = compute_status(
        PodView([exited(0)], restart_policy="Never", sandbox_ready=True), {}, T0
    )
    assert status["phase"] == "Succeeded"
    assert conditions(status)["Ready"]["reason"] == "PodCompleted"


def test_terminated_and_back_off_states_serialise_like_kubernetes() -> None:
    term = container_status_json(
        ContainerView("c", "i", "id", Terminated(137, "Error", T0, T1, "isthmus://9", signal=9))
    )
    assert term["state"] == {
        "terminated": {
            "exitCode": 137,
            "reason": "Error",
            "startedAt": T0,
            "finishedAt": T1,
            "containerID": "isthmus://9",
            "signal": 9,
        }
    }
    loop = container_status_json(backing_off(2))
    assert loop["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert loop["lastState"]["terminated"]["exitCode"] == 2
    assert loop["restartCount"] == 1


def test_sidecar_readiness_counts_for_the_pod() -> None:
    view = PodView(
        [running()],
        init_containers=[running("proxy", ready=False)],
        sidecars=frozenset({"proxy"}),
        sandbox_ready=True,
    )
    ready = conditions(compute_status(view, {}, T0))["Ready"]
    assert ready["status"] == "False"
    assert ready["message"] == "containers with unready status: [proxy]"
