"""External renderers (kustomize, helm): found once, versioned once, run within bounds.

:func:`run_tool` runs a command in its own session with a bare environment (a private ``HOME``
and Helm directories in the render's temp dir, no kubeconfig), kills the whole group when the
caller's timeout or cancellation fires, caps what it may print, and turns a non-zero exit into a
:class:`~fleet.errors.StalledError` carrying the tool's last error line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream

from fleet.errors import StalledError

__all__ = ["run_tool", "tool_env"]


def tool_env(home: Path) -> dict[str, str]:
    """A minimal environment whose every writable directory is under `home`."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        "KUBECONFIG": os.devnull,
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }


async def run_tool(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    max_output: int,
    name: str = "",
) -> bytes:
    """Run `command`; its stdout, or a :class:`StalledError` naming the tool (`name`) and cause."""
    tool = name or Path(command[0]).name
    try:
        process = await anyio.open_process(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise StalledError(f"cannot run {tool}: {exc.strerror}") from None
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drain, process.stdout, out, max_output, tool)
            tg.start_soon(_drain, process.stderr, err, max_output, tool)
            code = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with anyio.CancelScope(shield=True):
            await process.wait()
        raise
    if code != 0:
        lines = [ln for ln in b"".join(err).decode(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        cause = (errors or lines or [f"exit status {code}"])[-1].strip()[:500]
        raise StalledError(f"{tool} failed: {cause}")
    return b"".join(out)


async def _drain(
    stream: ByteReceiveStream | None, into: list[bytes], limit: int, tool: str
) -> None:
    if stream is None:
        return
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise StalledError(f"{tool} printed more than {limit} bytes")
        into.append(chunk)
