"""Restart decisions and the back-off schedule."""

from __future__ import annotations

import pytest

from harness.providers.netns.kubelet.backoff import (
    Backoff,
    exit_code_of,
    exit_reason,
    init_restart_policy,
    should_restart,
)


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 0, False),
        ("Never", 1, False),
    ],
)
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_init_containers_retry_failures_unless_never() -> None:
    assert init_restart_policy("Always") == "OnFailure"
    assert init_restart_policy("OnFailure") == "OnFailure"
    assert init_restart_policy("Never") == "Never"


def test_delays_double_from_one_second_up_to_thirty() -> None:
    b = Backoff()
    assert [b.on_exit(ran_for=0.5) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_minute_of_running_resets_the_back_off() -> None:
    b = Backoff()
    for _ in range(4):
        b.on_exit(ran_for=1)
    assert b.on_exit(ran_for=60) == 1
    assert b.on_exit(ran_for=59) == 2


@pytest.mark.parametrize(
    ("returncode", "code", "signal", "reason"),
    [
        (0, 0, None, "Completed"),
        (3, 3, None, "Error"),
        (-15, 143, 15, "Error"),
        (-9, 137, 9, "Error"),
    ],
)
def test_exit_codes(returncode: int, code: int, signal: int | None, reason: str) -> None:
    assert exit_code_of(returncode) == (code, signal)
    assert exit_reason(code) == reason
