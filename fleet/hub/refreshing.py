"""Keeping the hub's view of its repositories fresh: the poller, webhook pushes, backoff.

Every repository the apps read (and the config's own, and its parents') is listed with one
``ls-remote`` per poll interval for the whole fleet; a moved ref enqueues exactly the targets of
the apps reading that repository, and tells the config feed (a config commit is loaded at once).
A push (:meth:`Refreshing.refresh_now`) lists the repositories it names at once instead of waiting
for the poller, and answers what happened (:mod:`fleet.hub.pushes`).

A listing that fails, of any kind, is that repository's error on the board, never the hub's: a
blip is retried at once (tenacity), a longer outage backs the repository off (the poll interval
doubled per failure, at most ``_REPO_BACKOFF_CAP``) while every other repository carries on.
Listings started by a push run in the hub's task group (:attr:`Refreshing.group`, bound while the
hub runs), so a client that goes away cancels only its wait, never the listing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping

import anyio
import anyio.abc

from fleet.errors import ConfigError, describe
from fleet.hub import configured, gitconfig, webhooks
from fleet.hub.pushes import PushOutcome, RepoRefresh
from fleet.hub.reconciling import Reconciler
from fleet.hub.settings import HubSettings
from fleet.runtime import Clock, call_with_retry
from fleet.sources import PushedRef, Sources, repo_id

__all__ = ["PUSH_WAIT", "Refreshing"]

log = logging.getLogger(__name__)

PUSH_WAIT = 8.0  # seconds a webhook waits for its listings before it answers "pending"
_REPO_BACKOFF_CAP = 600.0  # a failing repository is listed again at least every 10 minutes


class Refreshing:
    """The repositories' listings: when each is due, what a moved one enqueues."""

    def __init__(
        self,
        *,
        settings: HubSettings,
        clock: Clock,
        sources: Sources,
        board: gitconfig.ConfigBoard,
        config_feed: gitconfig.ConfigFeed,
        reconciler: Reconciler,
        enqueue_app: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sources = sources
        self._board = board
        self._config_feed = config_feed
        self._reconciler = reconciler
        self._enqueue_app = enqueue_app
        self._next: dict[str, float] = {}  # a failing repository's next listing (backoff)
        self.group: anyio.abc.TaskGroup | None = None  # the hub's, while it runs

    async def refresh(self, url: str, *, pushed: PushedRef | None = None) -> RepoRefresh:
        """List `url` now; a failure of any kind is that repository's error, never the hub's.

        `pushed`: an authenticated push's claim that a branch moved, which stands in for the
        listing only where it continues what the mirror listed (:mod:`fleet.sources.pushed`)."""
        key = repo_id(url).key
        try:  # a blip of the remote is retried (tenacity); a longer outage backs off
            moved = await call_with_retry(
                lambda: self._sources.refresh(url, pushed=pushed),
                clock=self._clock,
                what=f"ls-remote {key}",
            )
        except Exception as exc:
            error = describe(exc)
            state = self._board.repo_failed(key, error)
            interval = self._settings.poll_interval
            delay = min(_REPO_BACKOFF_CAP, interval * 2 ** (state.failures - 1))
            self._next[key] = self._clock.now() + delay
            log.warning("event=poll_failed repo=%s error=%s retry_in=%.0f", key, error, delay)
            return RepoRefresh(repo=key, result="failed", error=error)
        self._board.repo_ok(key)
        self._next.pop(key, None)
        enqueued = 0
        if moved:
            self._config_feed.repo_moved(key)
            for name in self._apps_of_repo(key):
                app = self._reconciler.config.app(name)
                enqueued += len(self._reconciler.targets_of(app)) if app is not None else 0
                self._enqueue_app(name)
        return RepoRefresh(repo=key, result="moved" if moved else "unchanged", enqueued=enqueued)

    def _apps_of_repo(self, key: str) -> list[str]:
        apps = self._reconciler.config.apps
        return [a.name for a in apps if repo_id(a.source.repo_url).key == key]

    def repos(self, keys: set[str] | None = None) -> dict[str, str]:
        """The repositories the apps read, key -> URL (those among `keys` when given)."""
        found: dict[str, str] = {}
        for app in self._reconciler.config.apps:
            try:
                key = repo_id(app.source.repo_url).key
            except ConfigError:
                continue  # refused at load; never reached here
            if keys is None or key in keys:
                found.setdefault(key, app.source.repo_url)
        for key, url in self._config_feed.repos().items():  # the config's and its parents'
            if keys is None or key in keys:
                found.setdefault(key, url)
        return found

    async def poll(self) -> None:
        """The poller: every due repository listed once per interval (with jitter)."""
        interval = self._settings.poll_interval
        while True:
            jitter = random.uniform(-1, 1) * self._settings.poll_jitter * interval  # noqa: S311
            await anyio.sleep(interval + jitter)
            now = self._clock.now()
            due = {k: u for k, u in self.repos().items() if self._next.get(k, 0.0) <= now}
            async with anyio.create_task_group() as group:  # one slow remote never blocks others
                for url in due.values():
                    group.start_soon(self.refresh, url)

    def matched(self, push: webhooks.Push) -> dict[str, str]:
        """The repositories `push` names that the fleet reads, key -> URL."""
        return self.repos({configured.repo_id_or_none(url) for url in push.urls} - {""})

    async def refresh_now(
        self, matched: Mapping[str, str], *, pushed: PushedRef | None = None
    ) -> PushOutcome:
        """A push: list each of `matched` at once, answer what happened.

        Each repository is listed (coalesced with a listing in flight) in the hub's task group;
        the answer waits up to ``PUSH_WAIT`` seconds. A listing still running then is
        ``pending``: it goes on and enqueues its apps when it lands.
        """
        group = self.group
        assert group is not None, "a push before the hub runs"
        results: dict[str, RepoRefresh] = {}
        landed = {key: anyio.Event() for key in matched}

        async def one(key: str, url: str) -> None:  # in the hub's group: a client that goes away
            results[key] = await self.refresh(url, pushed=pushed)  # cancels only its wait
            landed[key].set()

        for key, url in matched.items():
            group.start_soon(one, key, url)
        with anyio.move_on_after(PUSH_WAIT):
            for event in landed.values():
                await event.wait()
        return PushOutcome(
            tuple(results.get(k, RepoRefresh(repo=k, result="pending")) for k in sorted(matched))
        )

    def refresh_key(self, key: str) -> None:
        """Another replica received a push for repository `key`: list it here too."""
        url = self.repos({key}).get(key)
        if url is not None and self.group is not None:
            self.group.start_soon(self.refresh, url)
