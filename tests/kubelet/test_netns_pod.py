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

from harness.providers.netns.kubelet.containers import LAUNCHER, start_container
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
NODE_IP = "10.250.0.1"


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


@pytest.fixture
def node_ns() -> object:
    name = f"iktest-{secrets.token_hex(3)}-node"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "addr", "add", NODE_IP + "/32", "dev", "lo")
        sh("ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        yield name
    finally:
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            sh("kill", "-9", pid, check=False)
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
async def sandbox(node_ns: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    uid = secrets.token_hex(16)
    sb = Sandbox(
        netns=pod_netns(node_ns.removesuffix("-node"), uid), ip=POD_IP, veth=node_veth(uid)
    )
    etc = Path("/etc/netns") / sb.netns
    try:
        await create_pod_network(node_ns, sb)
        write_etc_files(
            etc,
            {
                "hosts": f"127.0.0.1\tlocalhost\n{POD_IP}\tpod\n",
                "resolv.conf": "nameserver 127.0.0.1\n",
            },
        )
        yield sb
    finally:
        await remove_pod_network(node_ns, sb)
        shutil.rmtree(etc, ignore_errors=True)


def host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def exists(path: str) -> bool:
    return Path(path).exists()


def read(path: Path) -> str:
    return path.read_text()


def proc_status(pid: int) -> str:
    return Path(f"/proc/{pid}/status").read_text()


async def http_get_in(netns: str, url: str) -> str:
    code = (
        f"import urllib.request;print(urllib.request.urlopen({url!r}, timeout=2).read().decode())"
    )
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        netns,
        sys.executable,
        "-c",
        code,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
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
    assert not exists(target)
    assert not exists(toplevel)

    server = LaunchSpec(
        argv=[
            sys.executable,
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            target,
        ],
        env={"PATH": os.environ["PATH"]},
        scratch=str(tmp_path / "scratch-server"),
        mounts=[Mount(str(volume), target, readonly=True)],
        uid=65534,
        gid=65534,
        hostname="pod",
        traverse=[sys.executable],
    )
    reader = LaunchSpec(
        argv=[
            "sh",
            "-c",
            f"cat {toplevel}/hello.txt; id -u; hostname; "
            f"touch {toplevel}/x 2>/dev/null || echo read-only",
        ],
        env={"PATH": os.environ["PATH"]},
        scratch=str(tmp_path / "scratch-reader"),
        mounts=[Mount(str(volume), toplevel, readonly=True)],
        hostname="pod",
    )
    srv = await start_container(
        sys.executable,
        sandbox.netns,
        server,
        tmp_path / "server.json",
        tmp_path / "logs" / "server.log",
    )
    rdr = await start_container(
        sys.executable,
        sandbox.netns,
        reader,
        tmp_path / "reader.json",
        tmp_path / "logs" / "reader.log",
    )
    try:
        assert await asyncio.wait_for(rdr.wait(), 20) == 0
        out = read(rdr.log_path).splitlines()
        assert out == [f"hello {tag}", "0", "pod", "read-only"]

        body = ""
        deadline = asyncio.get_running_loop().time() + 20
        while not body:
            try:
                body = await http_get_in(node_ns, f"http://{POD_IP}:8080/hello.txt")
            except AssertionError:
                assert srv.running, read(srv.log_path)
                assert asyncio.get_running_loop().time() < deadline, "pod never answered"
                await asyncio.sleep(0.2)
        assert body == f"hello {tag}\n\n"

        status = proc_status(srv.pid)
        assert "\nUid:\t65534\t65534" in status
        assert not exists(target), "the mount path leaked onto the host"
        assert "isthmus-kubelet-test" not in host_mounts()
    finally:
        await srv.stop(grace=5, kill_wait=5)
        await rdr.stop(grace=1, kill_wait=5)

    veth = sandbox.veth
    await remove_pod_network(node_ns, sandbox)
    assert not netns_exists(sandbox.netns)
    assert veth not in sh("ip", "-n", node_ns, "link", "show")
    assert POD_IP not in sh("ip", "-n", node_ns, "route", "show")
    assert not exists(f"/proc/{srv.pid}")
    assert not exists(target)
    assert not exists(toplevel)
    assert "isthmus-kubelet-test" not in host_mounts()


@pytest.mark.parametrize(
    ("argv", "mounts", "code", "message"),
    [
        (["true"], [Mount("/nonexistent-volume-source", "/x")], 128, "container setup failed"),
        (["/nonexistent/program"], [], 127, "no such file or directory"),
        (["no-such-program-anywhere"], [], 127, "executable file not found in $PATH"),
    ],
)
def test_launcher_reports_why_a_container_never_ran(
    tmp_path: Path, argv: list[str], mounts: list[Mount], code: int, message: str
) -> None:
    spec = LaunchSpec(
        argv=argv, env={"PATH": "/usr/bin:/bin"}, scratch=str(tmp_path / "s"), mounts=mounts
    )
    (tmp_path / "spec.json").write_text(spec.to_json())
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER), str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == code
    assert message in proc.stderr


def test_image_paths_and_fresh_writable_dirs_exist_only_in_the_container(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.mkdir()
    (image / "hello").write_text("from the image\n")
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho tool-ok\n")
    tool.chmod(0o755)
    app, bin_file, rw = (
        "/home/isthmus-test-app",
        "/usr/local/bin/isthmus-test-tool",
        ("/var/log/isthmus-test-rw"),
    )
    spec = LaunchSpec(
        argv=["/bin/sh", "-c", f"cat hello && isthmus-test-tool && touch {rw}/x && pwd && id -u"],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        scratch=str(tmp_path / "s"),
        cwd=app,
        uid=1001,
        gid=1001,
        mounts=[
            Mount(str(image), app),
            Mount(str(tool), bin_file, kind="file"),
            Mount(str(tmp_path / "s" / "rw"), rw, readonly=False, kind="fresh"),
        ],
    )
    (tmp_path / "spec.json").write_text(spec.to_json())
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER), str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"from the image\ntool-ok\n{app}\n1001\n"
    assert (tmp_path / "s" / "rw" / "x").is_file()  # the writable dir is the scratch one
    for path in (app, bin_file, rw):
        assert not os.path.lexists(path), f"{path} leaked onto the host"
