"""When a container that exited starts again (pure).

Rules: ``restartPolicy`` Always restarts on any exit, OnFailure on a non-zero exit,
Never not at all. Restarts wait an exponential back-off (1 s, 2 s, 4 s … capped at
30 s); a container that ran for 60 s or more before exiting starts from 1 s again.
Init containers (other than sidecars) never restart under Always: they restart on
failure unless the pod's policy is Never.
"""

from __future__ import annotations

from dataclasses import dataclass

ALWAYS, ON_FAILURE, NEVER = "Always", "OnFailure", "Never"


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0


def should_restart(policy: str, exit_code: int) -> bool:
    """Whether a container with ``restartPolicy`` ``policy`` restarts after ``exit_code``."""
    if policy == ALWAYS:
        return True
    if policy == ON_FAILURE:
        return exit_code != 0
    return False


def init_restart_policy(pod_policy: str) -> str:
    """The effective restart policy of a (non-sidecar) init container."""
    return NEVER if pod_policy == NEVER else ON_FAILURE


@dataclass
class Backoff:
    """Consecutive-crash counter for one container."""

    policy: BackoffPolicy = BackoffPolicy()
    crashes: int = 0

    def on_exit(self, ran_for: float) -> float:
        """Record an exit after ``ran_for`` seconds of running; return the delay to wait."""
        if ran_for >= self.policy.reset_after:
            self.crashes = 0
        self.crashes += 1
        delay: float = self.policy.initial * 2.0 ** (self.crashes - 1)
        return min(self.policy.cap, delay)


def exit_reason(exit_code: int) -> str:
    """The ``terminated.reason`` Kubernetes reports for an exit code."""
    return "Completed" if exit_code == 0 else "Error"


def exit_code_of(returncode: int) -> tuple[int, int | None]:
    """(exitCode, signal) from a ``Popen.returncode`` (negative = killed by a signal)."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None
