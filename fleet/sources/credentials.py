"""Credentials for git remotes, read from one file and handed to git through its environment.

The file (YAML) lists entries matched by URL prefix (normalised like repository URLs, whole path
segments only) against a repository's key; the longest prefix wins::

    credentials:
      - url: https://git.example.com/team/
        username: bot            # optional with a token (defaults to x-access-token)
        password: s3cret         # or: token: ghp_...
      - url: ssh://git@github.com/
        sshKey: /etc/fleet/deploy_key
        knownHosts: /etc/fleet/known_hosts

Secrets never reach a command line or a log: https credentials go to git through ``GIT_ASKPASS``
(a tiny script that echoes two environment variables of the git process), ssh runs with the deploy
key, ``IdentitiesOnly`` and a pinned ``known_hosts`` under ``StrictHostKeyChecking=yes``. A
:class:`Credential`'s ``repr`` shows no secret, and every password, token and the lines of every
deploy key are registered with :func:`fleet.logs.register_secret` as the file is read, so no log
line or scrubbed error text can show them.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet import logs
from fleet.errors import ConfigError
from fleet.sources.urls import repo_id

__all__ = ["Credential", "Credentials", "git_auth_env", "load_credentials", "write_askpass"]

_ASKPASS = """#!/bin/sh
# Written by fleet: answers git's prompts from its own environment; holds no secret itself.
case "$1" in
  Username*) printf '%s\\n' "$FLEET_GIT_USERNAME" ;;
  *) printf '%s\\n' "$FLEET_GIT_PASSWORD" ;;
esac
"""


@dataclass(frozen=True)
class Credential:
    """One entry of the credentials file."""

    url: str
    username: str = ""
    password: str = field(default="", repr=False)
    ssh_key: Path | None = None
    known_hosts: Path | None = None


@dataclass(frozen=True)
class Credentials:
    """Every entry, matched by the longest URL prefix."""

    entries: tuple[Credential, ...] = ()

    def for_key(self, key: str) -> Credential | None:
        matches = [c for c in self.entries if key == c.url or key.startswith(c.url + "/")]
        return max(matches, key=lambda c: len(c.url), default=None)


def load_credentials(path: Path) -> Credentials:
    """Parse the credentials file at `path`; a bad file is a :class:`ConfigError`."""
    try:
        data: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"credentials file {path}: {type(exc).__name__}") from None
    items = (data or {}).get("credentials", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"credentials file {path}: expected a mapping with a 'credentials' list")
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ConfigError(f"credentials file {path}: entry {index} has no 'url'")
        entries.append(_entry(item, where=f"credentials file {path}: entry {index}"))
    return Credentials(tuple(entries))


def _entry(item: dict[str, Any], *, where: str) -> Credential:
    token = item.get("token")
    secret = str(token or item.get("password") or "")
    logs.register_secret(secret)
    key, hosts = item.get("sshKey"), item.get("knownHosts")
    ssh_key = Path(key).expanduser() if key else None
    if ssh_key is not None:
        _register_key(ssh_key)
    try:
        url = repo_id(item["url"]).key
    except ConfigError:
        raise ConfigError(
            f"{where}: 'url' must be a plain URL prefix without a user name or password "
            "(give them in 'username' and 'password' or 'token')"
        ) from None
    return Credential(
        url=url,
        username=str(item.get("username") or ("x-access-token" if token else "")),
        password=secret,
        ssh_key=ssh_key,
        known_hosts=Path(hosts).expanduser() if hosts else None,
    )


def _register_key(path: Path) -> None:
    """Mask every body line of the deploy key at `path` (a PEM line is a secret by itself)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return  # ssh will say so, naming the file; nothing to mask
    logs.register_secret(text.strip())
    for line in text.splitlines():
        if len(line) >= 16 and not line.startswith("-----"):
            logs.register_secret(line.strip())


def write_askpass(directory: Path) -> Path:
    """The askpass script under `directory`, written once (mode 0700)."""
    script = directory / "askpass.sh"
    if not script.exists() or script.read_text() != _ASKPASS:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".askpass.{os.getpid()}"
        tmp.write_text(_ASKPASS)
        tmp.chmod(0o700)
        tmp.replace(script)
    return script


def git_auth_env(credential: Credential | None, *, scheme: str, askpass: Path) -> Mapping[str, str]:
    """Environment variables that give git `credential` for a remote of `scheme`."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": str(askpass), "SSH_ASKPASS": ""}
    if credential is not None and scheme in {"https", "http"}:
        env["FLEET_GIT_USERNAME"] = credential.username
        env["FLEET_GIT_PASSWORD"] = credential.password
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if credential is not None and credential.ssh_key is not None:
        ssh += ["-i", str(credential.ssh_key), "-o", "IdentitiesOnly=yes"]
    if credential is not None and credential.known_hosts is not None:
        ssh += ["-o", f"UserKnownHostsFile={credential.known_hosts}"]
    env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    return env
