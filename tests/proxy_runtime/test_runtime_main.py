"""The proxy process itself: ``python -m mesh.proxy`` and ``isthmus component proxy[-init]``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from mesh.install.components import load_component
from mesh.proxy import __main__ as proxy_main
from mesh.proxy import init
from tests.proxy.proxy_support import LOOPBACK, Mesh
from tests.proxy_runtime.runtime_support import (
    WAIT,
    free_port,
    identity_service,
    proxy_env,
    token_file,
)

ROOT = Path(__file__).resolve().parents[2]
ISTHMUS = Path(sys.executable).parent / "isthmus"


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKERD2_PROXY_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_the_components_are_these_mains() -> None:
    assert load_component("proxy") is proxy_main.main
    assert load_component("proxy-init") is init.main


async def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT * 3):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_bad_environment_exits_2_naming_the_variables() -> None:
    env = base_env()
    env["LINKERD2_PROXY_INBOUND_DEFAULT_POLICY"] = "allow-all"
    code, _, err = await run([sys.executable, "-m", "mesh.proxy"], env)
    assert code == 2
    assert "proxy: LINKERD2_PROXY_INBOUND_DEFAULT_POLICY: 'allow-all' is not one of" in err
    assert "proxy: LINKERD2_PROXY_IDENTITY_LOCAL_NAME: required" in err


async def test_proxy_init_simulates_through_the_cli() -> None:
    argv = [str(ISTHMUS), "component", "proxy-init", "--inbound-ports-to-ignore", "4190,4191"]
    code, out, err = await run([*argv, "--simulate"], base_env())
    assert code == 0, err
    assert "iptables -t nat -A PROXY_INIT_OUTPUT -o lo -j RETURN" in out


async def test_the_process_becomes_ready_and_exits_0_on_sigterm(mesh: Mesh, tmp_path: Path) -> None:
    """Certified by the real identity service, ``/ready`` is 200; SIGTERM drains, exits 0."""
    async with identity_service(mesh) as identity_port:
        admin = free_port()
        env = base_env() | proxy_env(
            mesh,
            "web",
            token=token_file(tmp_path, "web"),
            identity_port=identity_port,
            LINKERD2_PROXY_INBOUND_LISTEN_ADDR=f"{LOOPBACK}:{free_port()}",
            LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR=f"{LOOPBACK}:{free_port()}",
            LINKERD2_PROXY_ADMIN_LISTEN_ADDR=f"{LOOPBACK}:{admin}",
            LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD="1s",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mesh.proxy",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with httpx.AsyncClient(timeout=1) as http, asyncio.timeout(WAIT * 2):
                while True:
                    try:
                        ready = await http.get(f"http://{LOOPBACK}:{admin}/ready")
                    except httpx.TransportError:
                        ready = None
                    if ready is not None and ready.status_code == 200:
                        break
                    await asyncio.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(WAIT):
                _, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    log = err.decode()
    assert process.returncode == 0, log
    assert "certified web.demo.serviceaccount.identity.linkerd.cluster.local" in log
    assert "shutting down" in log
