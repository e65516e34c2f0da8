"""Substrate: the pinned kubectl's exec, port-forward and logs work as on any cluster.

Every check runs the real kubectl of the cluster's version against the first cluster
of the topology; the API server proxies to the kubelet as it would to a real one
(SPDY/3.1 upgrades for exec/attach/port-forward, chunked logs).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lightkube.resources.core_v1 import Pod

from harness.kube import Kube, wait_for
from harness.kubectl import Kubectl, run_in_terminal
from harness.reporting import Evidence
from harness.settings import TIMEOUTS

MANIFEST = (Path(__file__).parent / "streaming.yaml").read_text()
CONNECTIONS = 6
PAYLOAD = 256 * 1024


def _first(kube: dict[str, Kube], kubectl: dict[str, Kubectl]) -> tuple[Kube, Kubectl]:
    name = next(iter(kube))
    return kube[name], kubectl[name]


def _deploy(k: Kube, namespace: str, *pods: str) -> None:
    k.apply(MANIFEST, namespace)
    for pod in pods:
        k.wait_pod_ready(pod, namespace)


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace")


@pytest.mark.conformance(
    short_name="substrate-kubectl-exec",
    description="kubectl exec into either container of a pod returns the command's stdout "
    "and stderr apart and its exit code, in the container's environment, working directory "
    "and network namespace (SUB-1)",
    features=["kubectl-exec"],
    profile="substrate",
    conf=["SUB-1"],
)
def test_exec_returns_stdout_stderr_and_exit_code(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str, evidence: Evidence
) -> None:
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "streamer")
    pod_ip = k.client.get(Pod, "streamer", namespace=namespace).status.podIP
    script = "echo to-stdout; echo to-stderr >&2; echo $GREETING; pwd; hostname; exit 3"
    r = kc.run(
        "exec",
        "-n",
        namespace,
        "streamer",
        "-c",
        "shell",
        "--",
        "sh",
        "-c",
        script,
        timeout=TIMEOUTS.kubectl_stream,
    )
    evidence.record(
        "exec", {"rc": r.returncode, "stdout": _text(r.stdout), "stderr": _text(r.stderr)}
    )
    lines = _text(r.stdout).splitlines()
    assert lines == ["to-stdout", "hello-from-the-pod-spec", "/tmp", "streamer"], (
        f"expected stdout lines [to-stdout, $GREETING of the pod spec, workingDir /tmp, the pod's "
        f"hostname]; kubectl exec printed {lines!r} (stderr {_text(r.stderr)!r})"
    )
    assert "to-stderr" in _text(r.stderr), f"expected to-stderr on stderr, saw {r.stderr!r}"
    assert "to-stderr" not in _text(r.stdout)
    assert r.returncode == 3, (
        f"expected kubectl exec to exit 3 like the command; it exited {r.returncode}"
    )
    # the second container: same pod network (the pod IP is among its addresses)
    r2 = kc.run(
        "exec",
        "-n",
        namespace,
        "streamer",
        "-c",
        "echo",
        "--",
        "hostname",
        "-I",
        timeout=TIMEOUTS.kubectl_stream,
    )
    assert r2.returncode == 0, f"exec into container echo failed: {_text(r2.stderr)}"
    assert pod_ip in _text(r2.stdout).split(), (
        f"expected the pod IP {pod_ip} among the exec'd command's addresses, saw {r2.stdout!r}"
    )


@pytest.mark.conformance(
    short_name="substrate-kubectl-exec-stdin",
    description="kubectl exec -i forwards stdin (256 KiB, checksummed) and closes it at EOF "
    "(SUB-1)",
    features=["kubectl-exec"],
    profile="substrate",
    conf=["SUB-1"],
)
def test_exec_i_forwards_stdin(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str
) -> None:
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "streamer")
    data = os.urandom(PAYLOAD)
    r = kc.run(
        "exec",
        "-i",
        "-n",
        namespace,
        "streamer",
        "-c",
        "shell",
        "--",
        "sha256sum",
        timeout=TIMEOUTS.kubectl_stream,
        stdin=data,
    )
    want = hashlib.sha256(data).hexdigest()
    assert r.returncode == 0, f"kubectl exec -i sha256sum exited {r.returncode}: {_text(r.stderr)}"
    assert _text(r.stdout).split()[:1] == [want], (
        f"expected the container to read exactly our {PAYLOAD} bytes (sha256 {want}); "
        f"it printed {r.stdout!r}"
    )


@pytest.mark.conformance(
    short_name="substrate-kubectl-exec-tty",
    description="kubectl exec -it gives the command a terminal (tty prints a /dev/pts path) "
    "sized like kubectl's own, interactive input reaches it, Ctrl-C interrupts the "
    "foreground command and the shell's exit code comes back (SUB-1)",
    features=["kubectl-exec"],
    profile="substrate",
    conf=["SUB-1"],
)
def test_exec_it_gives_a_terminal(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str, evidence: Evidence
) -> None:
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "streamer")
    argv = kc.argv("exec", "-it", "-n", namespace, "streamer", "-c", "shell", "--", "sh")
    run = run_in_terminal(
        argv,
        [
            ("", b"tty; stty size; echo marker-$((6*7)); sleep 60\n"),
            ("marker-42", b"\x03"),
            ("^C", b"echo interrupted; exit 5\n"),
        ],
        size=(101, 31),
        timeout=TIMEOUTS.kubectl_stream,
    )
    evidence.record("terminal", {"output": run.output, "rc": run.returncode})
    assert re.search(r"/dev/pts/\d+\r?\n", run.output), (
        f"expected `tty` to print a /dev/pts path; the terminal showed {run.output!r}"
    )
    assert re.search(r"^31 101\r?$", run.output, re.M), (
        f"expected `stty size` to report kubectl's terminal (31 rows, 101 columns); "
        f"saw {run.output!r}"
    )
    assert "interrupted" in run.output, f"Ctrl-C did not interrupt sleep: {run.output!r}"
    assert run.returncode == 5, f"expected exit code 5 from the shell, saw {run.returncode}"


def _local_port(forward_output: str) -> int:
    m = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", forward_output)
    assert m, f"kubectl port-forward did not report a local port: {forward_output!r}"
    return int(m.group(1))


def _echo_round_trip(port: int, seed: int) -> tuple[int, bool]:
    """Send PAYLOAD bytes, half-close, read the echo: (bytes back, identical?)."""
    data = hashlib.sha256(str(seed).encode()).digest() * (PAYLOAD // 32)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUTS.kubectl_stream) as s:
        s.settimeout(TIMEOUTS.kubectl_stream)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        back = bytearray()
        while chunk := s.recv(65536):
            back += chunk
    return len(back), bytes(back) == data


@pytest.mark.conformance(
    short_name="substrate-kubectl-port-forward",
    description=f"kubectl port-forward to a pod and to a Service carries {CONNECTIONS} "
    f"concurrent TCP connections each way ({PAYLOAD // 1024} KiB sent and echoed back "
    "byte for byte, half-close honoured) (SUB-2)",
    features=["kubectl-port-forward"],
    profile="substrate",
    conf=["SUB-2"],
)
@pytest.mark.parametrize("target", ["pod/streamer", "svc/streamer"])
def test_port_forward_carries_concurrent_connections_both_ways(
    kube: dict[str, Kube],
    kubectl: dict[str, Kubectl],
    namespace: str,
    evidence: Evidence,
    target: str,
) -> None:
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "streamer")
    remote = "9000" if target.startswith("pod/") else "80"
    with kc.background("port-forward", "-n", namespace, target, f":{remote}") as fwd:
        assert fwd.wait_for_output("Forwarding from 127.0.0.1:", TIMEOUTS.stream_ready), (
            f"kubectl port-forward {target} did not start listening: {fwd.output!r}"
        )
        port = _local_port(fwd.output)
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            results = list(pool.map(lambda i: _echo_round_trip(port, i), range(CONNECTIONS)))
        evidence.record("port-forward", {"target": target, "results": results, "log": fwd.output})
    assert results == [(PAYLOAD, True)] * CONNECTIONS, (
        f"expected {CONNECTIONS} connections through {target} each echoing {PAYLOAD} bytes "
        f"intact; saw (bytes back, intact) = {results}; kubectl said {fwd.output!r}"
    )


@pytest.mark.conformance(
    short_name="substrate-kubectl-logs-follow",
    description="kubectl logs -f keeps printing lines the container writes after it started "
    "(SUB-3)",
    features=["kubectl-logs"],
    profile="substrate",
    conf=["SUB-3"],
)
def test_logs_follow_prints_new_lines(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str
) -> None:
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "streamer")
    with kc.background(
        "logs", "-f", "-n", namespace, "streamer", "-c", "shell", "--tail", "1"
    ) as f:
        assert f.wait_for_output("tick-", TIMEOUTS.stream_ready), f"no log line: {f.output!r}"
        first = int(re.findall(r"tick-(\d+)", f.output)[0])
        later = f"tick-{first + 4}\n"
        assert f.wait_for_output(later, TIMEOUTS.stream_ready), (
            f"expected logs -f to follow to {later.strip()} (written ~2 s after tick-{first}); "
            f"it printed {f.output!r}"
        )
        assert f.proc.poll() is None, "kubectl logs -f exited while the container still runs"


@pytest.mark.conformance(
    short_name="substrate-kubectl-logs-previous",
    description="After a container restarts, kubectl logs --previous shows its last run's "
    "output and kubectl logs the current run's (SUB-3)",
    features=["kubectl-logs"],
    profile="substrate",
    conf=["SUB-3"],
)
def test_logs_previous_shows_the_last_run(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str
) -> None:
    k, kc = _first(kube, kubectl)
    k.apply(MANIFEST, namespace)

    def restarted() -> int | None:
        pod = k.client.get(Pod, "restarter", namespace=namespace)
        statuses = pod.status.containerStatuses if pod.status else None
        count = statuses[0].restartCount if statuses else 0
        return count if count >= 1 and statuses and statuses[0].state.running else None

    wait_for(f"{namespace}/restarter restarted and running", restarted, TIMEOUTS.container_restart)
    prev = kc.run(
        "logs", "--previous", "-n", namespace, "restarter", timeout=TIMEOUTS.kubectl_stream
    )
    assert prev.returncode == 0, f"logs --previous failed: {_text(prev.stderr)}"
    prev_lines = _text(prev.stdout).splitlines()
    assert len(prev_lines) == 2, f"expected the previous run's two lines, saw {prev_lines!r}"
    assert prev_lines[0].startswith("run-started-"), prev_lines
    assert prev_lines[1] == "run-ending", (
        f"expected the previous run to end with run-ending, saw {prev_lines!r}"
    )

    def current_run() -> list[str] | None:
        now = kc.run("logs", "-n", namespace, "restarter", timeout=TIMEOUTS.kubectl_stream)
        lines = _text(now.stdout).splitlines()
        return lines if lines and lines[0] != prev_lines[0] else None

    # the new instance may not have written its first line yet: converge on it
    now_lines = wait_for(
        f"kubectl logs of {namespace}/restarter showing a run other than --previous",
        current_run,
        TIMEOUTS.stream_ready,
    )
    assert now_lines[0].startswith("run-started-"), now_lines


def test_attach_follows_the_containers_output(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str
) -> None:
    """kubectl attach prints what the container writes from then on."""
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "streamer")
    with kc.background("attach", "-n", namespace, "streamer", "-c", "shell") as a:
        assert a.wait_for_output("tick-", TIMEOUTS.stream_ready), f"attach printed {a.output!r}"
        first = int(re.findall(r"tick-(\d+)", a.output)[0])
        assert a.wait_for_output(f"tick-{first + 2}\n", TIMEOUTS.stream_ready), a.output


def test_attach_i_feeds_the_containers_stdin(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str
) -> None:
    """kubectl attach -i writes to a `stdin: true` container's stdin and shows its answer."""
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "reader")
    r = kc.run(
        "attach",
        "-i",
        "-n",
        namespace,
        "reader",
        "-c",
        "main",
        timeout=TIMEOUTS.kubectl_stream,
        stdin=b"one\ntwo\n",
    )
    out = _text(r.stdout)
    assert "got-one" in out, f"expected the container's answer got-one; attach printed {out!r}"
    assert "got-two" in out, f"expected got-two as well; attach printed {out!r}"


def test_exec_ends_with_its_container(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str
) -> None:
    """An exec'd command is stopped when its container's process ends."""
    k, kc = _first(kube, kubectl)
    k.apply(MANIFEST, namespace)
    k.wait_pod_ready("restarter", namespace, timeout=TIMEOUTS.container_restart)
    started = time.monotonic()
    r = kc.run(
        "exec",
        "-n",
        namespace,
        "restarter",
        "--",
        "sleep",
        "600",
        timeout=TIMEOUTS.container_restart,
    )
    took = time.monotonic() - started
    assert took < TIMEOUTS.kubectl_stream, (
        f"expected exec of `sleep 600` to end when the container (which exits after ~2 s) "
        f"ended; it took {took:.0f}s (rc {r.returncode}, {_text(r.stderr)!r})"
    )
    assert r.returncode != 0, "a killed exec must not report success"


def test_limits_enforced_or_reported(
    kube: dict[str, Kube], kubectl: dict[str, Kubectl], namespace: str, evidence: Evidence
) -> None:
    """A container's memory limit stops a process that outgrows it, or (on a host without
    cgroup v2) the pod carries a ResourceLimitsNotEnforced Warning saying why."""
    k, kc = _first(kube, kubectl)
    _deploy(k, namespace, "limited")
    events = kc.run(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=limited,reason=ResourceLimitsNotEnforced",
        "-o",
        "jsonpath={.items[*].message}",
        timeout=TIMEOUTS.kubectl_stream,
    )
    message = _text(events.stdout).strip()
    evidence.record("limits", {"event": message})
    if message:
        assert "limits of container main not enforced" in message, message
        return
    hog = "python3 -c 'b = bytearray(256 * 2**20); print(len(b))'"
    r = kc.run(
        "exec", "-n", namespace, "limited", "--", "sh", "-c", hog, timeout=TIMEOUTS.kubectl_stream
    )
    assert r.returncode == 137, (
        f"expected a 256 MiB allocation to be OOM-killed (exit 137) under a 64Mi limit; "
        f"exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}"
    )
