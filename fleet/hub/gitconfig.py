"""The hub's config, from its own disk or from git, composed with the children of its app-of-apps.

``fleet run --config`` names a local path (a file, or a directory of ``.yaml``/``.yml`` files) or a
git location ``REPO#REF:PATH``: ``REPO`` an ``https://``, ``http://``, ``ssh://``, ``file://`` or
scp-like ``git@host:org/repo.git`` URL, ``REF`` a branch, tag or commit (default ``HEAD``), ``PATH``
a file or directory in that repository (default ``fleet.yaml``). A ref cannot hold ``:`` (git
forbids it), so the first ``:`` after ``#`` ends it.

:class:`ConfigFeed` is the one reader, called by the hub's config watcher. :meth:`ConfigFeed.load`
answers ``None`` when nothing changed, else a :class:`Loaded`: the effective config (the base
config's apps, parents excluded, plus the children of every parent, see
:mod:`fleet.hub.appofapps`), every problem found, and the notification sinks of a new good base.

- A local base is stat-polled: a change of any file's mtime or size re-reads it.
- A git base is read through the hub's shared mirrors (:class:`~fleet.sources.Sources`), so one
  listing and one fetch serve the config and every app reading that repository: the hub's poller
  and webhooks list the repository and, when it moved, call :meth:`ConfigFeed.repo_moved`, which
  wakes the watcher at once. The commit's files are extracted to a scratch directory and loaded
  by the same loader as a local file, once every link of the tree is known to resolve inside it
  (a chain of links can climb out where each text alone looks harmless; such a commit is refused
  naming the link); errors and each app's (and project's) ``origin`` then name
  ``REPO@COMMIT:FILE``, never the scratch path. Reading and validating run in a worker thread,
  off the event loop. Nothing of a working copy is ever read: only what was committed and pushed.
- A bad base (unreadable, unparsable, invalid) keeps the last good one running; the problem,
  naming the commit and file, is in :attr:`Loaded.errors` until a good commit replaces it. A
  commit already judged is not read again; a remote that fails is retried with backoff, its
  error shown until the remote answers again (beside the error of a bad newest commit, which
  stays). A move of the repository while a read is in flight is not lost: every move bumps a
  generation, and a read clears the "to be read" flag only if none came since it began.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from fleet import logs
from fleet.config import Config
from fleet.config import loading as config_loading
from fleet.config.projects import Project
from fleet.errors import ConfigError, StalledError, describe
from fleet.hub import appofapps, configured
from fleet.notify import SinkSpec
from fleet.reconcile.desired import DesiredState
from fleet.render import confine
from fleet.report import Board
from fleet.sources import Snapshot, Sources, repo_id, repo_path

__all__ = ["ConfigBoard", "ConfigFeed", "ConfigLocation", "Loaded", "parse_location"]

log = logging.getLogger(__name__)

LOCATION_HELP = (
    "the apps: fleet.yaml or a directory of app files on this disk, or a git location "
    "REPO#REF:PATH (REF defaults to HEAD, PATH to fleet.yaml), e.g. "
    "https://git.example/ops.git#main:fleet/fleet.yaml, ssh://git@host/ops.git#v2:fleet/ or "
    "git@host:ops.git#main:fleet.yaml; a git config is read from the commit REF names, followed "
    "by the poller and webhooks, credentials from --credentials (default fleet.yaml)"
)
_GIT_SCHEMES = ("https://", "http://", "ssh://", "file://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")
_RETRY_CAP = 60.0  # seconds: a failing config remote is read again at least this often


@dataclass(frozen=True)
class ConfigLocation:
    """A config in git: file or directory `path` of the commit `ref` of `repo_url` names."""

    repo_url: str
    ref: str = "HEAD"
    path: str = "fleet.yaml"

    @property
    def key(self) -> str:
        return repo_id(self.repo_url).key

    def where(self, commit: str) -> str:
        """``REPO@COMMIT:`` for messages (no credential: the key never holds one)."""
        return f"{self.key}@{commit[:12]}:"

    def to_json(self) -> dict[str, str]:
        return {"repo": self.key, "ref": self.ref, "path": self.path or "."}


def parse_location(text: str) -> ConfigLocation | None:
    """The git location `text` names, or None for a local path; refuses a malformed one."""
    if not (text.startswith(_GIT_SCHEMES) or _SCP_LIKE.match(text)):
        return None
    url, _, rest = text.partition("#")
    ref, _, path = rest.partition(":")
    where = f"--config {logs.scrub(text)}"
    if not url:
        raise ConfigError(f"{where}: no repository before '#'")
    try:
        repo_id(url)  # refuses credentials in the URL, naming the host and never the secret
        normalised = repo_path(path or "fleet.yaml", where=f"{where}: ")
    except StalledError as exc:
        raise ConfigError(
            f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)
        ) from None
    return ConfigLocation(repo_url=url, ref=ref.strip() or "HEAD", path=normalised)


def _stamp(path: Path) -> tuple[tuple[str, float, int], ...] | None:
    """What changes when the config file, or any file of a config directory, changes."""
    try:
        files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        return tuple((str(f), f.stat().st_mtime, f.stat().st_size) for f in files)
    except OSError:
        return None


async def _escape(checkout: Path) -> str:
    """Why the extracted `checkout` may not be read (a link resolving outside it), or "".

    The extraction judges each link by its text alone; a chain of links can still climb out once
    laid out, and the loader would parse whatever it lands on (the hub's own files). The tree is
    judged as the kernel resolves it (:func:`fleet.render.confine.check_tree`), off the loop.
    """
    try:
        await anyio.to_thread.run_sync(confine.check_tree, checkout)
    except StalledError as exc:
        return str(exc)
    return ""


def _read(target: Path) -> tuple[Config, tuple[SinkSpec, ...] | ConfigError]:
    """The config at `target` and its notification sinks (or why they are refused); blocking."""
    sources = config_loading.read_documents(target)  # each file decoded once, for both
    config = config_loading.assemble(sources)
    try:
        return config, configured.sinks_in(sources, where=target)
    except ConfigError as exc:
        return config, exc


def _renamed(config: Config, rename: Any) -> Config:
    """`config` with every origin (apps', projects', each app's project's) passed to `rename`."""

    def project(p: Project) -> Project:
        return dataclasses.replace(p, origin=rename(p.origin))

    return dataclasses.replace(
        config,
        apps=tuple(
            dataclasses.replace(a, origin=rename(a.origin), project_rules=project(a.project_rules))
            for a in config.apps
        ),
        projects=tuple(project(p) for p in config.projects),
    )


@dataclass(frozen=True)
class Loaded:
    """What a load changed: the effective config, every problem, new sinks (None: keep them)."""

    config: Config
    errors: tuple[str, ...] = ()
    sinks: tuple[SinkSpec, ...] | None = None


@dataclass
class _Base:
    """The base config: the last good one, and the state of the last read."""

    config: Config = field(default_factory=Config)
    parents: frozenset[str] = frozenset()
    error: str = ""  # why the newest base (file or commit) is not in use
    fetch_error: str = ""  # why the remote could not be read, until it answers again
    commit: str = ""  # the commit of the last good git config
    tried: str = ""  # the last commit judged, good or bad (not read again)
    sinks: tuple[SinkSpec, ...] | None = None  # read with the last good config, not yet handed
    sink_error: str = ""


class ConfigFeed:
    """The hub's config: base (local or git) plus app-of-apps children; see the module doc."""

    def __init__(
        self,
        *,
        source: str | Path,
        sources: Sources,
        desired: DesiredState,
        hub_id: str = "fleet",
    ) -> None:
        self.location = parse_location(str(source)) if isinstance(source, str) else None
        self.path = Path(source) if self.location is None else None
        self.sources = sources
        self.parents = appofapps.Parents(desired=desired, sources=sources, hub=hub_id)
        self._base = _Base()
        self._stamp: tuple[tuple[str, float, int], ...] | None = None
        self._first = True
        self._due = True  # the git base is to be read (start, a moved repository, a retry)
        self._generation = 0  # bumped by every move of the config's repository
        self._moved: set[str] = set()  # repositories moved since the last load
        self._failures = 0
        self._retry_at = 0.0
        self._lock = anyio.Lock()
        self._wake = anyio.Event()

    # -- what the hub calls -------------------------------------------------------------------

    def repos(self) -> dict[str, str]:
        """The repositories the config reads (its own, its parents'), key -> URL, to be polled."""
        found = dict(self.parents.repos())
        if self.location is not None:
            found.setdefault(self.location.key, self.location.repo_url)
        return found

    def repo_moved(self, key: str) -> None:
        """Repository `key` moved (poller or webhook): re-read what reads it, now."""
        if self.location is not None and key == self.location.key:
            self._due = True  # cleared by a read only if no move came since it began
            self._generation += 1
        if key in self.parents.repos():
            self._moved.add(key)
        self._wake.set()

    async def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less when a repository the config reads moved."""
        with anyio.move_on_after(seconds):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def load(self) -> Loaded | None:
        """Read what changed; None when nothing did (see the module docstring)."""
        async with self._lock:
            base_changed = await (self._read_git() if self.location else self._read_local())
            moved, self._moved = self._moved, set()
            kept = [a for a in self._base.config.apps if a.name in self._base.parents]
            parents_changed = await self.parents.refresh(
                kept, config=self._base.config, moved=moved, force=base_changed
            )
            if not (base_changed or parents_changed or self._first):
                return None
            self._first = False
            return self._compose()

    def status(self) -> dict[str, Any]:
        """What ``/api/status`` shows of the config: its source and commit, its parents."""
        source: dict[str, Any] = (
            {"type": "git", **self.location.to_json(), "commit": self._base.commit}
            if self.location is not None
            else {"type": "file", "path": str(self.path)}
        )
        if self._base.tried and self._base.tried != self._base.commit:
            source["failed_commit"] = self._base.tried
        return {"source": source, "parents": self.parents.status()}

    # -- the base -----------------------------------------------------------------------------

    async def _read_local(self) -> bool:
        assert self.path is not None
        stamp = _stamp(self.path)
        if stamp == self._stamp and (stamp is not None or self._base.error):
            return False  # unchanged (a missing file is reported once, not every check)
        self._stamp = stamp
        await self._judge(self.path, rename=lambda text: text)
        return True

    async def _read_git(self) -> bool:
        location = self.location
        assert location is not None
        if not self._due or time.monotonic() < self._retry_at:
            return False
        generation = self._generation  # a move after this point is read again, next load
        try:
            snapshot = await self.sources.snapshot(location.repo_url, location.ref)
            changed = snapshot.commit != self._base.tried
            if changed:
                await self._read_commit(location, snapshot)
        except Exception as exc:  # the remote (or a bug), not the config: retried with backoff
            self._failures += 1
            delay = min(_RETRY_CAP, 2.0 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay
            error = f"config repo {location.key} ref {location.ref!r}: {describe(exc)}"
            log.warning("event=config_fetch_failed error=%s retry_in=%.0f", error, delay)
            changed = self._base.fetch_error != error
            self._base.fetch_error = error
            return changed
        recovered = bool(self._base.fetch_error)  # the remote answered: its error leaves
        if recovered:
            log.info("event=config_fetch_recovered repo=%s", location.key)
        self._base.fetch_error, self._failures, self._retry_at = "", 0, 0.0
        if self._generation == generation:
            self._due = False
        return changed or recovered

    async def _read_commit(self, location: ConfigLocation, snapshot: Snapshot) -> None:
        """Judge the config at `snapshot`, a commit not judged before."""
        kind = await snapshot.kind(location.path)
        with tempfile.TemporaryDirectory(prefix="fleet-config-") as scratch:
            checkout = Path(scratch) / "repo"
            checkout.mkdir()
            if kind is not None:
                await snapshot.extract([location.path], checkout)
            target = checkout / location.path
            prefix = location.where(snapshot.commit)
            self._base.tried = snapshot.commit
            if kind is None:
                self._fail(
                    f"config {prefix}{location.path}: no such file or directory at commit "
                    f"{snapshot.commit[:12]} of ref {location.ref!r} (check the PATH of "
                    "--config REPO#REF:PATH); the last good config stays in use"
                )
            elif error := await _escape(checkout):
                self._fail(
                    f"config {prefix}{location.path or '.'}: {error}; the config is not "
                    "read (the last good config stays in use)"
                )
            else:
                scratch_prefix = f"{checkout}/"

                def rename(text: str) -> str:
                    return text.replace(scratch_prefix, prefix)

                if await self._judge(target, rename=rename):
                    self._base.commit = snapshot.commit

    async def _judge(self, target: Path, *, rename: Any) -> bool:
        """Load `target` as the new base; a bad one keeps the last good. True if it was good.

        Reading, parsing and validating (a second for a thousand apps) run in a worker thread,
        so the hub's loop keeps serving while a config loads."""
        try:
            config, sinks = await anyio.to_thread.run_sync(_read, target)
        except ConfigError as exc:
            self._fail(f"{rename(str(exc))} (the last good config stays in use)")
            return False
        config = _renamed(config, rename)
        self._base.config = config
        self._base.parents = appofapps.parents(config)
        self._base.error = ""
        if isinstance(sinks, ConfigError):  # the sinks of the last good config stay in use
            self._base.sink_error = rename(str(sinks))
        else:
            self._base.sinks, self._base.sink_error = sinks, ""
        log.info("event=config_read apps=%d parents=%d", len(config.apps), len(self._base.parents))
        return True

    def _fail(self, error: str) -> None:
        self._base.error = error
        log.warning("event=config_invalid error=%s", error)

    # -- the effective config -----------------------------------------------------------------

    def _compose(self) -> Loaded:
        base = self._base
        sinks, base.sinks = base.sinks, None
        checked, refused = configured.checked_sources(base.config)
        errors = [e for e in (base.fetch_error, base.error, base.sink_error) if e] + refused
        config, problems = self.parents.compose(checked, parents=base.parents)
        return Loaded(
            config=config,
            errors=tuple(errors + problems),
            sinks=sinks,
        )


@dataclass
class ConfigBoard(Board):
    """The board, plus what the config feed shows: its source and commit, its parents."""

    config_status: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["config"] = self.config_status.get("source", {})
        out["parents"] = self.config_status.get("parents", [])
        return out
