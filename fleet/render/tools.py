"""External renderers (kustomize, helm): found once, versioned once, run within bounds.

:func:`run_tool` runs a command in its own session, kills the whole group when the caller's
timeout or cancellation fires, caps what it may print, and turns a non-zero exit into a
:class:`~fleet.errors.StalledError` carrying the tool's last error line.

:func:`tool_env` is the whole environment a tool sees, built from nothing rather than filtered
from the hub's: ``PATH`` (absolute entries only, so nothing runs from the checkout), ``LANG`` and
``LC_ALL`` set to ``C``, and ``HOME``, ``TMPDIR``, the XDG directories and every Helm directory
(cache, config, data, plugins, repositories, registry login) inside the render's scratch
directory. So no hub credential reaches a tool: no ``KUBECONFIG`` (``~/.kube`` is the scratch's),
no ``FLEET_*`` secret, no ``SSH_AUTH_SOCK``, no git or cloud credential variable, no Helm
repository or registry login of the machine, and Helm loads no plugin.
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


def tool_env(scratch: Path) -> dict[str, str]:
    """The environment of a tool run: nothing of the hub's but ``PATH``; state under `scratch`."""
    helm = scratch / "helm"
    return {
        "PATH": _safe_path(os.environ.get("PATH", "")),
        "LANG": "C",
        "LC_ALL": "C",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "XDG_CACHE_HOME": str(scratch / "cache"),
        "XDG_CONFIG_HOME": str(scratch / "config"),
        "XDG_DATA_HOME": str(scratch / "data"),
        "XDG_STATE_HOME": str(scratch / "state"),
        "HELM_CACHE_HOME": str(helm / "cache"),
        "HELM_CONFIG_HOME": str(helm / "config"),
        "HELM_DATA_HOME": str(helm / "data"),
        "HELM_NO_PLUGINS": "1",
        "HELM_PLUGINS": str(helm / "plugins"),
        "HELM_REGISTRY_CONFIG": str(helm / "registry" / "config.json"),
        "HELM_REPOSITORY_CACHE": str(helm / "repository"),
        "HELM_REPOSITORY_CONFIG": str(helm / "repositories.yaml"),
        "KUSTOMIZE_PLUGIN_HOME": str(scratch / "kustomize-plugins"),
    }


def _safe_path(path: str) -> str:
    """`path` without empty or relative entries (they would name the tool's cwd, the checkout)."""
    entries = [entry for entry in path.split(os.pathsep) if os.path.isabs(entry)]
    return os.pathsep.join(dict.fromkeys(entries)) or "/usr/bin:/bin"


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
