"""The hub's config intake: ``fleet.yaml`` (a file, a directory, or a git location) read, shown
and applied, again whenever it changes.

A load (:meth:`Configuring.load`) reads the config through the feed (:mod:`fleet.hub.gitconfig`),
shows its status and every problem on the board, hands the notification sinks to the notifier,
then applies the apps. A bad config keeps the last good one running and shows why; a config with
a refused app runs the others.

Applying (:meth:`Configuring.apply`) compares the new apps with the running ones: an app that
left has its targets forgotten through :class:`~fleet.report.Targets` (its objects stay in the
clusters) and its drift watches dropped; an app that came or changed (a policy, a project, a
source) is handed to ``on_changed``, which the hub turns into a full look at each of its targets.
The watcher (:meth:`Configuring.watch`) waits on the feed, which a push to the config's
repository (or a parent's) wakes at once. :attr:`Configuring.read` is set once the first load is
over, good or bad: the hub listens before that (a config in git may take a fetch), and what needs
the apps (a webhook's match, the control API) waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from fleet.config import Config
from fleet.hub import gitconfig
from fleet.hub.cells import Cells
from fleet.hub.reconciling import Reconciler
from fleet.notify import Notifier
from fleet.report import Targets

__all__ = ["Configuring"]

log = logging.getLogger(__name__)


class Configuring:
    """Loads the config, shows it, applies what changed."""

    def __init__(
        self,
        *,
        feed: gitconfig.ConfigFeed,
        board: gitconfig.ConfigBoard,
        notifier: Notifier,
        reconciler: Reconciler,
        targets: Targets,
        check_interval: float,
        on_changed: Callable[[str], None],
    ) -> None:
        self._feed = feed
        self._board = board
        self._notifier = notifier
        self._reconciler = reconciler
        self._targets = targets
        self._check_interval = check_interval
        self._on_changed = on_changed
        self.cells: Cells | None = None  # the hub's, while it runs
        self.read = anyio.Event()  # the first load is over

    async def load(self) -> None:
        """Read the config (local or git, see :mod:`fleet.hub.gitconfig`); apply what changed."""
        try:
            await self._load()
        finally:
            self.read.set()

    async def _load(self) -> None:
        loaded = await self._feed.load()
        self._board.config_status = self._feed.status()
        if loaded is None:
            return
        problems = list(loaded.errors)
        if loaded.sinks is not None:
            self._notifier.configure(loaded.sinks)
        problems += self._notifier.problems()
        self._board.config_error = "; ".join(problems)
        for error in problems:
            log.warning("event=config_problem error=%s", error)
        self.apply(loaded.config)

    def apply(self, config: Config) -> None:
        """Run `config`: forget the apps that left, hand on those that came or changed."""
        old = {a.name: a for a in self._reconciler.config.apps}
        self._reconciler.config = config
        new = {a.name: a for a in config.apps}
        gone = set(old) - set(new)
        for name in gone:
            for key in self._targets.of_app(name):
                message = f"app {name} left the config; its objects stay in the clusters"
                self._targets.forget(key, message=message)
        if self.cells is not None:
            self.cells.unwatch_where(lambda key: key[1] in gone)
        for name, app in new.items():
            if old.get(name) != app:  # a changed policy or project needs a full look
                self._on_changed(name)
        log.info("event=config_loaded apps=%d", len(new))

    async def watch(self) -> None:
        """Load again whenever the feed says the config may have changed."""
        while True:  # a push to the config's repository (or a parent's) wakes it at once
            await self._feed.wait(self._check_interval)
            await self.load()

    def watch_failed(self, error: str) -> None:
        """The watcher failed (it is restarted): the board says so."""
        self._board.config_error = f"the config watcher failed: {error} (retrying)"
