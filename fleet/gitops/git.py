"""Running git for config-repo edits: timeouts, credentials from the environment, no leaks.

Every call goes through :meth:`Git.run`: an ``anyio`` subprocess in its own session, killed with
its helpers (``git-remote-https``, ``ssh``) as one process group on timeout or cancellation;
``LC_ALL=C`` so git's words can be read; no terminal prompt, ever.

Credentials (:class:`Auth`) come from the environment: ``FLEET_GIT_TOKEN``, or
``FLEET_GIT_TOKEN_FILE`` naming a file that holds it (a mounted secret), with
``FLEET_GIT_USERNAME`` (default ``x-access-token``, which GitHub and GitLab accept with a token).
They reach git through ``GIT_ASKPASS``: a tiny script, written with mode 0700 into a private
temporary directory, that echoes two variables of the git process's own environment, so the secret
is on no command line, in no file, in no remote URL, and in no commit. Every text that leaves this
module (errors, logs) passes through :meth:`Git.redact`, which masks the token and any password
written into a URL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from fleet import process
from fleet.errors import ConfigError, FleetError, StalledError, TransientError

__all__ = ["Auth", "Git", "GitResult", "askpass_env", "redact_url"]

log = logging.getLogger(__name__)

_ASKPASS = """#!/bin/sh
# Written by fleet: answers git's prompts from git's own environment; holds no secret itself.
case "$1" in
  Username*) printf '%s\\n' "$FLEET_GIT_USERNAME" ;;
  *) printf '%s\\n' "$FLEET_GIT_PASSWORD" ;;
esac
"""
_URL_SECRET = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_AUTH_WORDS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied (publickey",
    "host key verification failed",
    "returned error: 401",
    "returned error: 403",
)
_DROPPED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_ASKPASS", "FLEET_GIT_TOKEN")
_MAX_OUTPUT = 64 * 2**20


def redact_url(text: str) -> str:
    """`text` with any ``user:password@`` of a URL masked."""
    return _URL_SECRET.sub(lambda m: f"{m['scheme']}***@", text)


@dataclass(frozen=True)
class Auth:
    """A username and token for https remotes; the token never shows in a ``repr``."""

    username: str
    token: str = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Auth | None:
        """``FLEET_GIT_TOKEN`` or the file named by ``FLEET_GIT_TOKEN_FILE``; None if neither."""
        env = os.environ if environ is None else environ
        token = env.get("FLEET_GIT_TOKEN", "")
        token_file = env.get("FLEET_GIT_TOKEN_FILE", "")
        if not token and token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"FLEET_GIT_TOKEN_FILE {token_file}: cannot read: {type(exc).__name__}"
                ) from None
            if not token:
                raise ConfigError(f"FLEET_GIT_TOKEN_FILE {token_file}: empty")
        if not token:
            return None
        return cls(username=env.get("FLEET_GIT_USERNAME") or "x-access-token", token=token)


@contextlib.contextmanager
def askpass_env(auth: Auth | None) -> Iterator[dict[str, str]]:
    """Environment variables that hand `auth` to git; the askpass script lives while in use."""
    env = {"GIT_TERMINAL_PROMPT": "0", "SSH_ASKPASS": "", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
    if auth is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="fleet-askpass-") as directory:
        script = Path(directory) / "askpass.sh"
        script.write_text(_ASKPASS)
        script.chmod(0o700)
        env.update(
            GIT_ASKPASS=str(script),
            FLEET_GIT_USERNAME=auth.username,
            FLEET_GIT_PASSWORD=auth.token,
        )
        yield env


@dataclass(frozen=True)
class GitResult:
    """What a git command did; `err` is already redacted."""

    code: int
    out: str
    err: str

    @property
    def cause(self) -> str:
        """The line of stderr that says why it failed."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith(("fatal:", "error:", "CONFLICT"))]
        return (fatal or lines or ["(no output)"])[-1][:500]


class Git:
    """git in the work tree `cwd`, with `env` (from :func:`askpass_env`) and a time limit.

    `label` names the repository in messages (default: `cwd`).
    """

    def __init__(
        self,
        cwd: Path,
        *,
        env: Mapping[str, str],
        auth: Auth | None = None,
        timeout: float = 120.0,
        label: str = "",
    ) -> None:
        self.cwd = cwd
        self.label = label or str(cwd)
        self._auth = auth
        self._timeout = timeout
        base = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        base.update(LC_ALL="C", GIT_CONFIG_NOSYSTEM="1", GIT_EDITOR="true")
        base.update(env)
        self._env = base

    def at(self, cwd: Path, *, label: str = "") -> Git:
        """The same runner in another directory."""
        clone = Git(cwd, env={}, auth=self._auth, timeout=self._timeout, label=label)
        clone._env = self._env
        return clone

    def redact(self, text: str) -> str:
        """`text` with the token and URL passwords masked."""
        text = redact_url(text)
        if self._auth is not None and self._auth.token:
            text = text.replace(self._auth.token, "***")
        return text

    async def run(self, *args: str, check: bool = True, network: bool = False) -> GitResult:
        """``git ARGS``; a failure raises (naming the command and cause) unless not `check`.

        A failed `network` call is :class:`StalledError` when the remote refused the credential,
        else :class:`TransientError`; a failed local call is :class:`StalledError`.
        """
        command = ["git"]
        if network and self._auth is not None:
            command += ["-c", "credential.helper="]  # ours, not a helper's, is the credential
        command += args
        started = time.monotonic()
        try:
            with anyio.fail_after(self._timeout):
                code, out, err = await self._exec(command)
        except TimeoutError:
            log.warning("event=git_timeout command=%s timeout_s=%s", args[0], self._timeout)
            raise TransientError(
                f"git {args[0]} of {self.label} timed out after {self._timeout:g} s"
            ) from None
        result = GitResult(
            code=code,
            out=out.decode(errors="replace"),
            err=self.redact(err.decode(errors="replace")),
        )
        log.debug(
            "event=git command=%s rc=%s elapsed_s=%.3f",
            self.redact(" ".join(args[:3])),
            code,
            time.monotonic() - started,
        )
        if code == 0 or not check:
            return result
        raise self.failure(args[0], result, network=network)

    def failure(self, command: str, result: GitResult, *, network: bool) -> FleetError:
        """The error for a failed `command`: refused credential, network, or local failure."""
        where = f"git {command} of {self.label}"
        if network and any(word in result.err.lower() for word in _AUTH_WORDS):
            return StalledError(
                f"{where}: access refused (bad or missing credential): {result.cause}"
            )
        if network:
            return TransientError(f"{where} failed: {result.cause}")
        return StalledError(f"{where} failed: {result.cause}")

    async def out(self, *args: str) -> str:
        """The stripped stdout of a local ``git ARGS`` that must succeed."""
        return (await self.run(*args)).out.strip()

    async def _exec(self, command: list[str]) -> tuple[int, bytes, bytes]:
        try:
            done = await process.run(command, cwd=self.cwd, env=self._env, max_output=_MAX_OUTPUT)
        except process.OutputTooLarge:
            raise StalledError(f"git {command[1:3]} of {self.label}: output too large") from None
        return done.code, done.stdout, done.stderr
