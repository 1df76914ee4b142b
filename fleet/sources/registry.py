"""The fleet's sources: one :class:`Mirror` per repository, made on first use, shared by all.

:class:`Sources` is what the hub holds. ``await sources.snapshot(url, revision)`` resolves a
revision (branch, tag, commit, ``HEAD``) to a :class:`Snapshot` of one commit, costing the remote at
most one listing per repository per interval and one fetch per new commit, however many apps and
clusters ask. ``await sources.refresh(url)`` is the webhook's entry: it lists now (coalescing with a
listing in flight) and tells whether any ref moved; given an authenticated push's claim that may
continue what the mirror listed (:mod:`fleet.sources.pushed`), it fetches the pushed commit while
it lists the remote's branches, and moves it only if the remote's branch is there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet.settings import default_cache_dir
from fleet.sources import credentials, gitcmd
from fleet.sources.mirror import Mirror
from fleet.sources.pushed import PushedRef
from fleet.sources.snapshot import Snapshot
from fleet.sources.urls import RepoId, repo_id

__all__ = ["SourceSettings", "Sources"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSettings:
    """How fleet talks to git remotes."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    interval: float = 180.0  # seconds between listings of one repository's refs
    git_timeout: float = 120.0  # seconds for any one git command
    credentials_file: Path | None = None
    max_archive_bytes: int = 512 * 1024 * 1024

    @property
    def git_dir(self) -> Path:
        return self.cache_dir / "git"


class Sources:
    """Every repository the fleet reads, by normalised URL."""

    def __init__(
        self, settings: SourceSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._mirrors: dict[str, Mirror] = {}
        self._credentials = (
            credentials.load_credentials(settings.credentials_file)
            if settings.credentials_file
            else credentials.Credentials()
        )

    def mirror(self, url: str) -> Mirror:
        """The mirror of `url`, made on first use (no I/O until a git call)."""
        repo = repo_id(url)
        mirror = self._mirrors.get(repo.key)
        if mirror is None:
            mirror = Mirror(
                repo=repo,
                path=self.settings.git_dir / repo.mirror_name(),
                env=self._env(repo),
                timeout=self.settings.git_timeout,
                interval=self.settings.interval,
                clock=self._clock,
            )
            self._mirrors[repo.key] = mirror
        return mirror

    async def snapshot(self, url: str, revision: str = "HEAD") -> Snapshot:
        """The commit `revision` of `url` names now, fetched into its mirror if new."""
        mirror = self.mirror(url)
        commit = await mirror.resolve(revision)
        return Snapshot(mirror, commit, max_archive_bytes=self.settings.max_archive_bytes)

    async def refresh(self, url: str, *, pushed: PushedRef | None = None) -> bool:
        """List `url`'s refs now (a webhook); true if any ref moved since the last listing.

        `pushed` is an authenticated webhook's claim (:attr:`fleet.hub.webhooks.Push.pushed`):
        a hint, never the truth (:meth:`Mirror.note_push`): its commit is fetched while the one
        branch is listed, and it moves only when that listing agrees; a claim refused or never
        acted on lists the remote in full, as without it.
        """
        mirror = self.mirror(url)
        if pushed is not None:
            moved = await mirror.note_push(pushed)
            if moved is not None:
                log.info("event=refresh repo=%s changed=%s listed=branch", mirror.repo, moved)
                return moved
        before = dict(mirror.refs_seen)
        after = await mirror.refs(force=True)
        changed = before != after
        log.info("event=refresh repo=%s changed=%s", mirror.repo, changed)
        return changed

    def repos(self) -> list[RepoId]:
        return [m.repo for m in self._mirrors.values()]

    def _env(self, repo: RepoId) -> dict[str, str]:
        askpass = credentials.write_askpass(self.settings.git_dir)
        credential = self._credentials.for_key(repo.key)
        auth = credentials.git_auth_env(credential, scheme=repo.scheme, askpass=askpass)
        return gitcmd.base_env(auth)
