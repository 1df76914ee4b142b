"""The API's tokens: the file that lists them, and the book that recognises a presented one.

- The file (``fleet run --api-tokens FILE``) is YAML (``tokens: [{token: ..., role: admin, name:
  ci}]``, or the list alone) or text, one ``token, role[, name]`` a line with ``#`` comments.
  Roles are ``read`` and ``admin`` (:class:`Role`, ordered). A token has at least 16 characters;
  a bad entry is a :class:`~fleet.errors.ConfigError` naming the file and the line, never the
  token. :class:`TokenFile` re-reads the file when it changes; a file that turns bad keeps the
  last good tokens and is logged.
- :class:`TokenBook` keeps only the SHA-256 digest of each token; a presented token is hashed
  and compared with **every** digest in constant time (``hmac.compare_digest``, no early exit),
  so neither the answer's timing nor the hub's memory holds a token. A caller is known by the
  token's *name* (:class:`Principal`), which is what logs show.

Parsing and the book are pure; :func:`read_tokens` and :class:`TokenFile` read the file.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import ConfigError

__all__ = [
    "MIN_TOKEN_LENGTH",
    "Principal",
    "Role",
    "TokenBook",
    "TokenEntry",
    "TokenFile",
    "digest",
    "parse_tokens",
    "read_tokens",
]

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class Role(enum.IntEnum):
    """What a caller may do; a higher role includes the lower ones."""

    READ = 1
    ADMIN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's name (never the token) and its role."""

    name: str
    role: Role


@dataclass(frozen=True)
class TokenEntry:
    """One entry of the token file. `token` is the secret: never log or show it."""

    token: str
    role: Role
    name: str

    def __repr__(self) -> str:  # a stray repr must not print the secret
        return f"TokenEntry(name={self.name!r}, role={self.role.label})"


# -- the file (pure but for reading it) ------------------------------------------------------------


def _role(value: Any, where: str) -> Role:
    text = str(value).strip().lower()
    for role in Role:
        if role.label == text:
            return role
    raise ConfigError(f"{where}: role {text!r} is not one of read, admin")


def _entry(token: Any, role: Any, name: Any, *, where: str, default_name: str) -> TokenEntry:
    if not isinstance(token, str) or not token:
        raise ConfigError(f"{where}: `token` is missing or not a string")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{where}: a token needs at least {MIN_TOKEN_LENGTH} characters "
            "(make one with `openssl rand -hex 32`)"
        )
    if any(c.isspace() or c == "," for c in token):
        raise ConfigError(f"{where}: a token may not hold spaces or commas")
    label = str(name).strip() if name else default_name
    if not _NAME.fullmatch(label):
        raise ConfigError(
            f"{where}: the name {label!r} may hold only letters, digits and . _ @ - "
            "(it is what logs show)"
        )
    return TokenEntry(token=token, role=_role(role, where), name=label)


def _from_yaml(data: list[Any], *, source: str) -> list[TokenEntry]:
    entries: list[TokenEntry] = []
    for index, item in enumerate(data, start=1):
        where = f"{source}: entry {index}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with `token` and `role`")
        unknown = sorted(set(item) - {"token", "role", "name"})
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r} (token, role, name)")
        entries.append(
            _entry(
                item.get("token"),
                item.get("role", ""),
                item.get("name"),
                where=where,
                default_name=f"entry-{index}",
            )
        )
    return entries


def _from_lines(text: str, *, source: str) -> list[TokenEntry]:
    entries: list[TokenEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        where = f"{source}: line {number}"
        fields = [f.strip() for f in stripped.split(",")]
        if len(fields) not in (2, 3):
            raise ConfigError(f"{where}: expected `token, role` or `token, role, name`")
        name = fields[2] if len(fields) == 3 else None
        entries.append(
            _entry(fields[0], fields[1], name, where=where, default_name=f"line-{number}")
        )
    return entries


def parse_tokens(text: str, *, source: str) -> tuple[TokenEntry, ...]:
    """The entries of a token file's `text` (YAML or ``token, role[, name]`` lines)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and "tokens" in data:
        data = data["tokens"]
    if isinstance(data, list):
        entries = _from_yaml(data, source=source)
    else:
        entries = _from_lines(text, source=source)
    if not entries:
        raise ConfigError(f"{source}: no tokens (one `token, role` a line; roles read, admin)")
    seen: set[str] = set()
    for entry in entries:
        if entry.token in seen:
            raise ConfigError(f"{source}: the token named '{entry.name}' appears twice")
        seen.add(entry.token)
    return tuple(entries)


def read_tokens(path: Path) -> tuple[TokenEntry, ...]:
    """The entries of the token file at `path`; warns when others may read it."""
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read the API token file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        log.warning("event=api_tokens_readable path=%s hint=chmod_600", path)
    return parse_tokens(text, source=str(path))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class TokenBook:
    """Token digests -> principals; a lookup compares with every digest in constant time."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = tuple((digest(e.token), Principal(e.name, e.role)) for e in entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, presented: str) -> Principal | None:
        return self.lookup_digest(digest(presented))

    def lookup_digest(self, wanted: bytes) -> Principal | None:
        found: Principal | None = None
        for held, principal in self._entries:  # no early exit: the time does not tell which
            if hmac.compare_digest(wanted, held):
                found = principal
        return found


class TokenFile:
    """The token file, re-read when it changes (looked at most every `interval` seconds).

    A file that turns bad keeps the last good book in use and is logged, as fleet.yaml is; a
    removed token stops working at the next look, for bearer calls and signed-in browsers alike.
    """

    def __init__(
        self,
        path: Path,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self._book = TokenBook(read_tokens(path))  # a bad file at start is the caller's error
        self._stamp = self._stat()
        self._looked = clock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def book(self) -> TokenBook:
        now = self.clock()
        if now - self._looked < self.interval:
            return self._book
        self._looked = now
        stamp = self._stat()
        if stamp == self._stamp:
            return self._book
        self._stamp = stamp
        try:
            self._book = TokenBook(read_tokens(self.path))
        except ConfigError as exc:
            log.warning("event=api_tokens_reload_failed kept=last_good error=%s", _q(str(exc)))
        else:
            log.info("event=api_tokens_reloaded path=%s tokens=%d", self.path, len(self._book))
        return self._book


def _q(value: str) -> str:
    """A log value, JSON-quoted (it may hold spaces)."""
    return json.dumps(value)
