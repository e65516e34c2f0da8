"""Probe decisions (pure): what to probe, how results turn into verdicts.

A :class:`ProbeTracker` follows Kubernetes' worker rules: the first probe runs
``initialDelaySeconds`` after the container started, then every ``periodSeconds``;
the verdict flips to success after ``successThreshold`` consecutive successes and to
failure after ``failureThreshold`` consecutive failures. Initial verdicts: readiness
fails (not ready), liveness succeeds, startup fails (not started). Only a *change*
of verdict is reported to the caller, which then acts (mark ready, restart, …).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from harness.providers.netns.kubelet.kobjects import Container, LifecycleHandler, Probe


class ProbeKind(Enum):
    READINESS = "Readiness"
    LIVENESS = "Liveness"
    STARTUP = "Startup"


@dataclass(frozen=True)
class ProbeParams:
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Probe) -> ProbeParams:
        return cls(
            initial_delay=probe.get("initialDelaySeconds", 0),
            period=max(1, probe.get("periodSeconds", 10)),
            timeout=max(1, probe.get("timeoutSeconds", 1)),
            success_threshold=max(1, probe.get("successThreshold", 1)),
            failure_threshold=max(1, probe.get("failureThreshold", 3)),
        )


@dataclass
class ProbeTracker:
    kind: ProbeKind
    params: ProbeParams
    verdict: bool = field(init=False)
    successes: int = 0
    failures: int = 0

    def __post_init__(self) -> None:
        self.verdict = self.kind is ProbeKind.LIVENESS

    def observe(self, success: bool) -> bool | None:
        """Record one result; return the new verdict when it changed, else None."""
        if success:
            self.successes += 1
            self.failures = 0
            if not self.verdict and self.successes >= self.params.success_threshold:
                self.verdict = True
                return True
        else:
            self.failures += 1
            self.successes = 0
            if self.verdict and self.failures >= self.params.failure_threshold:
                self.verdict = False
                return False
            if (
                not self.verdict
                and self.kind is not ProbeKind.READINESS
                and self.failures == self.params.failure_threshold
            ):
                return False
        return None

    def reset(self) -> None:
        self.successes = self.failures = 0
        self.verdict = self.kind is ProbeKind.LIVENESS


@dataclass(frozen=True)
class HttpTarget:
    host: str
    port: int
    path: str
    scheme: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TcpTarget:
    host: str
    port: int


@dataclass(frozen=True)
class ExecTarget:
    argv: tuple[str, ...]


@dataclass(frozen=True)
class SleepTarget:
    """A lifecycle hook that only waits."""

    seconds: float


@dataclass(frozen=True)
class BadProbe:
    """A probe that cannot run (e.g. an unknown named port); it always fails with this."""

    message: str


ProbeTarget = HttpTarget | TcpTarget | ExecTarget | SleepTarget | BadProbe


def resolve_port(port: int | str, container: Container) -> int | None:
    """A probe port by number or by the name of a container port."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def probe_target(probe: Probe, container: Container, pod_ip: str) -> ProbeTarget:
    """What a probe checks; the host defaults to the pod IP."""
    if "httpGet" in probe:
        http = probe["httpGet"]
        port = resolve_port(http.get("port", 80), container)
        if port is None:
            return BadProbe(f"unknown port {http.get('port')!r}")
        path = http.get("path", "/") or "/"
        return HttpTarget(
            host=http.get("host") or pod_ip,
            port=port,
            path=path if path.startswith("/") else "/" + path,
            scheme=(http.get("scheme") or "HTTP").upper(),
            headers=tuple((h["name"], h["value"]) for h in http.get("httpHeaders") or []),
        )
    if "tcpSocket" in probe:
        tcp = probe["tcpSocket"]
        port = resolve_port(tcp.get("port", 0), container)
        if port is None:
            return BadProbe(f"unknown port {tcp.get('port')!r}")
        return TcpTarget(host=tcp.get("host") or pod_ip, port=port)
    if "exec" in probe:
        return ExecTarget(tuple(probe["exec"].get("command") or []))
    return BadProbe("probe has no httpGet, tcpSocket or exec handler")


def hook_target(handler: LifecycleHandler, container: Container, pod_ip: str) -> ProbeTarget:
    """What a postStart/preStop hook does (probe handlers plus ``sleep``)."""
    if "sleep" in handler:
        return SleepTarget(float(handler["sleep"].get("seconds", 0)))
    probe: Probe = {k: v for k, v in handler.items() if k != "sleep"}  # type: ignore[assignment]
    return probe_target(probe, container, pod_ip)


def http_success(status: int) -> bool:
    """Kubernetes counts 200-399 as a successful HTTP probe."""
    return 200 <= status < 400
