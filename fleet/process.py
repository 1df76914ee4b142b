"""Running a child process from async code: output captured and bounded, the whole process group
killed on cancellation or timeout.

Every git call of fleet goes through here (sources' mirrors, gitops' config-repo edits). The child
runs in its own session, so a cancel (a timeout, a hub shutdown) kills it *and* whatever it
started (git's helpers, ssh), and the caller never waits on an orphan. Output beyond
`max_output` bytes is refused rather than buffered without bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
from anyio.abc import Process

__all__ = ["Completed", "OutputTooLarge", "run"]


class OutputTooLarge(Exception):
    """The child wrote more than the limit; it has been killed."""


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: bytes
    stderr: bytes


async def run(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    max_output: int = 64 * 2**20,
) -> Completed:
    """Run `command` to its end (or the caller's cancel scope) and capture both streams."""
    process = await anyio.open_process(
        list(command),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, process.stdout, out, max_output)
            tg.start_soon(_drain, process.stderr, err, max_output)
            if stdin is not None and process.stdin is not None:
                await process.stdin.send(stdin)
                await process.stdin.aclose()
            code = await process.wait()
    except BaseException:
        _kill_group(process)
        with anyio.CancelScope(shield=True):
            await process.wait()
        raise
    return Completed(code, b"".join(out), b"".join(err))


async def _drain(stream: anyio.abc.ByteReceiveStream | None, into: list[bytes], limit: int) -> None:
    if stream is None:
        return
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise OutputTooLarge(f"output exceeds {limit} bytes")
        into.append(chunk)


def _kill_group(process: Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
