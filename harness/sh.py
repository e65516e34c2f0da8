"""Running host commands with errors that show the command and its output."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence


class CommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], code: int, out: str, err: str) -> None:
        self.argv, self.code, self.out, self.err = list(argv), code, out, err
        super().__init__(f"`{' '.join(argv)}` exited {code}: {(err or out).strip()[-2000:]}")


def run(*argv: str, check: bool = True, input: str | None = None, timeout: float = 60) -> str:
    """Run a command, return its stdout; raise CommandError on failure when ``check``."""
    p = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise CommandError(argv, p.returncode, p.stdout, p.stderr)
    return p.stdout


def netns_run(netns: str, *argv: str, check: bool = True, timeout: float = 60) -> str:
    """Run a command inside network namespace ``netns``."""
    return run("ip", "netns", "exec", netns, *argv, check=check, timeout=timeout)


async def arun(
    *argv: str, check: bool = True, input: str | None = None, timeout: float = 60
) -> str:
    """Async twin of :func:`run`."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(input.encode() if input is not None else None), timeout
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode or -1, out.decode(), err.decode())
    return out.decode()
