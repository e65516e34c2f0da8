"""The pod network and launcher layer on a real host (root only, no API server).

A throwaway "node" namespace, a pod sandbox wired to it, containers started through
the launcher with volumes at paths that do not exist on the host; then teardown must
leave no namespace, veth, mount or process behind.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness.providers.netns.kubelet.containers import start_container
from harness.providers.netns.kubelet.launch import LaunchSpec, Mount
from harness.providers.netns.kubelet.naming import node_veth, pod_netns
from harness.providers.netns.kubelet.sandbox import (
    Sandbox,
    create_pod_network,
    netns_exists,
    remove_pod_network,
    write_etc_files,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 to create network namespaces",
)

POD_IP = "10.250.7.2"


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


@pytest.fixture
def node_ns() -> object:
    name = f"iktest-{secrets.token_hex(3)}-node"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        yield name
    finally:
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            sh("kill", "-9", pid, check=False)
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
async def sandbox(node_ns: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    uid = secrets.token_hex(16)
    sb = Sandbox(netns=pod_netns(node_ns.removesuffix("-node"), uid), ip=POD_IP,
                 veth=node_veth(uid))
    etc = tmp_path / "etc-netns" / sb.netns
    try:
        await create_pod_network(node_ns, sb)
        write_etc_files(etc, {"hosts": f"127.0.0.1\tlocalhost\n{POD_IP}\tpod\n"})
        yield sb
    finally:
        await remove_pod_network(node_ns, sb)
        shutil.rmtree(etc, ignore_errors=True)


def host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


async def http_get_in(netns: str, url: str) -> str:
    code = f"import urllib.request;print(urllib.request.urlopen({url!r}, timeout=2).read().decode())"
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, sys.executable, "-c", code,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_pod_runs_with_volume_and_is_reachable_then_leaves_nothing(
    node_ns: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    tag = secrets.token_hex(4)
    volume = tmp_path / "volumes" / "data"
    volume.mkdir(parents=True)
    (volume / "hello.txt").write_text(f"hello {tag}\n")
    target = f"/var/run/isthmus-kubelet-test-{tag}/data"
    toplevel = f"/isthmus-kubelet-test-{tag}/conf"
    assert not Path(target).exists() and not Path(toplevel).exists()

    server = LaunchSpec(
        argv=[sys.executable, "-m", "http.server", "8080", "--bind", "0.0.0.0",
              "--directory", target],
        env={"PATH": os.environ["PATH"]},
        scratch=str(tmp_path / "scratch-server"),
        mounts=[Mount(str(volume), target, readonly=True)],
        uid=65534,
        gid=65534,
        hostname="pod",
        traverse=[sys.executable],
    )
    reader = LaunchSpec(
        argv=["sh", "-c", f"cat {toplevel}/hello.txt; id -u; hostname; "
                          f"touch {toplevel}/x 2>/dev/null || echo read-only"],
        env={"PATH": os.environ["PATH"]},
        scratch=str(tmp_path / "scratch-reader"),
        mounts=[Mount(str(volume), toplevel, readonly=True)],
        hostname="pod",
    )
    srv = await start_container(sys.executable, sandbox.netns, server,
                                tmp_path / "server.json", tmp_path / "logs" / "server.log")
    rdr = await start_container(sys.executable, sandbox.netns, reader,
                                tmp_path / "reader.json", tmp_path / "logs" / "reader.log")
    try:
        assert await asyncio.wait_for(rdr.wait(), 20) == 0
        out = rdr.log_path.read_text().splitlines()
        assert out == [f"hello {tag}", "0", "pod", "read-only"]

        body = ""
        for _ in range(100):
            try:
                body = await http_get_in(node_ns, f"http://{POD_IP}:8080/hello.txt")
                break
            except AssertionError:
                assert srv.running, srv.log_path.read_text()
                await asyncio.sleep(0.1)
        assert body == f"hello {tag}\n\n"

        status = Path(f"/proc/{srv.pid}/status").read_text()
        assert "\nUid:\t65534\t65534" in status
        assert not Path(target).exists(), "the mount path leaked onto the host"
        assert target not in host_mounts() and "isthmus-kubelet-test" not in host_mounts()
    finally:
        await srv.stop(grace=5, kill_wait=5)
        await rdr.stop(grace=1, kill_wait=5)

    veth = sandbox.veth
    await remove_pod_network(node_ns, sandbox)
    assert not await netns_exists(sandbox.netns)
    assert veth not in sh("ip", "-n", node_ns, "link", "show")
    assert POD_IP not in sh("ip", "-n", node_ns, "route", "show")
    assert not Path(f"/proc/{srv.pid}").exists()
    assert not Path(target).exists() and not Path(toplevel).exists()
    assert "isthmus-kubelet-test" not in host_mounts()
