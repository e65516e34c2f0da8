"""Probe verdicts (scenario tables) and what a probe targets."""

from __future__ import annotations

import pytest

from harness.providers.netns.kubelet.kobjects import Container, Probe
from harness.providers.netns.kubelet.probing import (
    BadProbe,
    ExecTarget,
    HttpTarget,
    ProbeKind,
    ProbeParams,
    ProbeTracker,
    SleepTarget,
    TcpTarget,
    hook_target,
    http_success,
    probe_target,
)

S, F = True, False


@pytest.mark.parametrize(
    ("kind", "params", "results", "verdicts"),
    [
        pytest.param(
            ProbeKind.READINESS,
            ProbeParams(),
            [S, S, F, F, F, S],
            [True, None, None, None, False, True],
            id="readiness-default-thresholds",
        ),
        pytest.param(
            ProbeKind.READINESS,
            ProbeParams(success_threshold=2),
            [S, F, S, S],
            [None, None, None, True],
            id="readiness-needs-consecutive-successes",
        ),
        pytest.param(
            ProbeKind.READINESS,
            ProbeParams(),
            [F, F, F, F],
            [None, None, None, None],
            id="readiness-starts-unready-silently",
        ),
        pytest.param(
            ProbeKind.LIVENESS,
            ProbeParams(failure_threshold=2),
            [F, S, F, F],
            [None, None, None, False],
            id="liveness-needs-consecutive-failures",
        ),
        pytest.param(
            ProbeKind.LIVENESS,
            ProbeParams(),
            [S, S, S],
            [None, None, None],
            id="liveness-starts-alive",
        ),
        pytest.param(
            ProbeKind.STARTUP,
            ProbeParams(failure_threshold=3),
            [F, F, S],
            [None, None, True],
            id="startup-succeeds-in-time",
        ),
        pytest.param(
            ProbeKind.STARTUP,
            ProbeParams(failure_threshold=3),
            [F, F, F, F],
            [None, None, False, None],
            id="startup-fails-once-at-threshold",
        ),
    ],
)
def test_tracker_verdicts(
    kind: ProbeKind, params: ProbeParams, results: list[bool], verdicts: list[bool | None]
) -> None:
    tracker = ProbeTracker(kind, params)
    assert [tracker.observe(r) for r in results] == verdicts


def test_reset_returns_to_the_initial_verdict() -> None:
    t = ProbeTracker(ProbeKind.LIVENESS, ProbeParams(failure_threshold=1))
    assert t.observe(F) is False
    t.reset()
    assert t.verdict is True


def test_params_defaults_and_floors() -> None:
    p = ProbeParams.of({"httpGet": {"port": 80}})
    assert p == ProbeParams(
        initial_delay=0, period=10, timeout=1, success_threshold=1, failure_threshold=3
    )
    assert ProbeParams.of({"periodSeconds": 0, "timeoutSeconds": 0}).period == 1


CONTAINER: Container = {
    "name": "c",
    "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 4191}],
}


@pytest.mark.parametrize(
    ("probe", "target"),
    [
        (
            {"httpGet": {"path": "/ready", "port": "admin"}},
            HttpTarget("10.0.0.5", 4191, "/ready", "HTTP", ()),
        ),
        (
            {
                "httpGet": {
                    "path": "live",
                    "port": 8080,
                    "host": "127.0.0.1",
                    "scheme": "HTTPS",
                    "httpHeaders": [{"name": "X-A", "value": "1"}],
                }
            },
            HttpTarget("127.0.0.1", 8080, "/live", "HTTPS", (("X-A", "1"),)),
        ),
        ({"tcpSocket": {"port": "http"}}, TcpTarget("10.0.0.5", 8080)),
        ({"tcpSocket": {"port": "9090"}}, TcpTarget("10.0.0.5", 9090)),
        ({"exec": {"command": ["cat", "/tmp/ok"]}}, ExecTarget(("cat", "/tmp/ok"))),
        ({"httpGet": {"port": "nope"}}, BadProbe("unknown port 'nope'")),
        ({}, BadProbe("probe has no httpGet, tcpSocket or exec handler")),
    ],
)
def test_probe_targets(probe: Probe, target: object) -> None:
    assert probe_target(probe, CONTAINER, "10.0.0.5") == target


@pytest.mark.parametrize(
    ("code", "ok"),
    [(199, False), (200, True), (302, True), (399, True), (400, False), (503, False)],
)
def test_http_success_range(code: int, ok: bool) -> None:
    assert http_success(code) is ok


def test_hook_targets_add_sleep_to_the_probe_handlers() -> None:
    assert hook_target({"sleep": {"seconds": 5}}, CONTAINER, "10.0.0.5") == SleepTarget(5.0)
    assert hook_target({"exec": {"command": ["true"]}}, CONTAINER, "ip") == ExecTarget(("true",))
    assert hook_target(
        {"httpGet": {"path": "/shutdown", "port": "admin"}}, CONTAINER, "10.0.0.5"
    ) == HttpTarget("10.0.0.5", 4191, "/shutdown", "HTTP", ())
