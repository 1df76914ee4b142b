"""Running git: one place for the timeout, the environment and the reading of its failures.

Every git call of fleet goes through :func:`run_git`: ``anyio`` subprocesses in their own session,
so a timeout or a cancellation kills git *and* its helpers (``git-remote-https``, ``ssh``) as one
process group. Failures become :mod:`fleet.errors` classes from git's own words (``LC_ALL=C``):
a refused credential or host key is stalled (nothing changes until the credentials do), anything
else on the network is transient. The command line never holds a secret (see
:mod:`fleet.sources.credentials`), so it may be logged. Git's own words can still echo a URL or a
helper's output: every text that leaves here (error messages, :attr:`GitFailed.stderr`, log
lines) is passed through :func:`fleet.logs.scrub` first.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from fleet import process
from fleet.errors import FleetError, StalledError, TransientError
from fleet.logs import scrub

__all__ = ["GitFailed", "base_env", "run_git"]

log = logging.getLogger(__name__)

_AUTH_WORDS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "host key verification failed",
    "permission denied (publickey",
    "http basic: access denied",
    "returned error: 401",
    "returned error: 403",
)
_MAX_OUTPUT = 256 * 1024 * 1024


class GitFailed(FleetError):
    """A git command exited non-zero; carries its stderr (scrubbed) for callers that read it."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(scrub(message))
        self.stderr = scrub(stderr)


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The inherited environment, cleaned of git state and of fleet's own variables (webhook
    secrets, API tokens: git needs none of them), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "FLEET_"))}
    env.update(LC_ALL="C", GIT_CONFIG_NOSYSTEM="1", GIT_ALLOW_PROTOCOL="file:https:http:ssh")
    env.update(extra)
    return env


async def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    time_limit: float,
    network: bool = False,
    stdin: bytes | None = None,
) -> bytes:
    """Run ``git ARGS``; its stdout, or a :class:`GitFailed` / fleet error on failure.

    A `network` call that fails is :class:`TransientError` or, for a refused credential,
    :class:`StalledError`; a local one is :class:`GitFailed` for the caller to explain.
    """
    command = ["git", "-c", "credential.helper=", *args]
    started = time.monotonic()
    try:
        with anyio.fail_after(time_limit):
            done = await process.run(command, cwd=cwd, env=env, stdin=stdin, max_output=_MAX_OUTPUT)
    except process.OutputTooLarge:
        raise TransientError(f"git {args[0]}: output exceeds the size limit") from None
    except TimeoutError:
        log.warning("event=git_timeout args=%s timeout_s=%s", _shown(args, 2), time_limit)
        raise TransientError(f"git {args[0]} timed out after {time_limit:g} s") from None
    code, out, err = done.code, done.stdout, done.stderr
    elapsed = time.monotonic() - started
    log.debug("event=git args=%s rc=%s elapsed_s=%.3f", _shown(args, 3), code, elapsed)
    if code == 0:
        return out
    stderr = err.decode(errors="replace").strip()
    cause = _cause(stderr)
    if network:
        if any(word in stderr.lower() for word in _AUTH_WORDS):
            raise StalledError(
                f"git {args[0]}: access refused (bad or missing credential): {cause}"
            )
        raise TransientError(f"git {args[0]} failed: {cause}")
    raise GitFailed(f"git {args[0]} failed: {cause}", stderr=stderr)


def _shown(args: Sequence[str], count: int) -> str:
    return scrub(" ".join(args[:count]))


def _cause(stderr: str) -> str:
    """The line of git's stderr that says why, scrubbed (cut after scrubbing: no half secret)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return scrub((fatal or lines or ["(no output)"])[-1])[:500]
