"""What an operator may do to a running hub, behind the control API (:mod:`fleet.hub.control`).

:class:`Operations` holds no state of its own: it reads the targets' records and the config, and
acts through the work queue (a refresh, a sync asked for, a suspension's first run) and the
suspensions file. Every answer lists the targets it touched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fleet.hub.control import Suspensions
from fleet.hub.reconciling import Key, Reconciler
from fleet.report import Board, Targets
from fleet.runtime import WorkQueue

__all__ = ["Operations"]

log = logging.getLogger(__name__)


@dataclass
class Operations:
    """The hub's operations, bound to its parts."""

    reconciler: Reconciler
    targets: Targets
    board: Board
    queue: WorkQueue[Key]
    suspensions: Suspensions
    refresh: Callable[[str], Awaitable[Any]]  # list one repository now
    config_read: Callable[[], bool]  # the hub's first config load is over

    def app_detail(self, app: str) -> dict[str, Any] | None:
        """Every target of `app` with its record and recent events; None for an unknown app."""
        if self.reconciler.config.app(app) is None:
            return None
        return {
            "app": app,
            "targets": [self.targets.status(k).to_json() for k in sorted(self.targets.of_app(app))],
            "events": self.board.events_json(app=app, limit=50),
        }

    def has_cluster(self, cluster: str) -> bool:
        return cluster in self.board.clusters

    def _app_keys(self, app: str, cluster: str | None) -> list[Key]:
        found = self.reconciler.config.app(app)
        if found is None:
            return []
        names = self.reconciler.targets_of(found)
        return [(c, app) for c in names if cluster is None or c == cluster]

    async def refresh_app(self, app: str, cluster: str | None) -> list[Key]:
        """List the app's repository now, then check its targets in full."""
        found = self.reconciler.config.app(app)
        if found is not None:
            await self.refresh(found.source.repo_url)
        keys = self._app_keys(app, cluster)
        for key in keys:
            self.reconciler.force_full.add(key)
            self.queue.add(key)
        return keys

    def request_sync(self, app: str, cluster: str | None, *, prune: bool) -> list[Key]:
        """Sync now (the way a manual-sync app is applied); `prune` consents to its prunes."""
        keys = self._app_keys(app, cluster)
        for key in keys:
            self.reconciler.sync_requests[key] = prune
            self.queue.add(key)
        return keys

    def suspend(self, *, app: str | None, cluster: str | None, suspended: bool) -> list[Key]:
        """Suspend or resume an app, a cluster, or one target; its targets run once to say so."""
        self.suspensions.set(app=app, cluster=cluster, suspended=suspended)
        keys = [
            k
            for k in self.targets.target_keys()
            if (app is None or k[1] == app) and (cluster is None or k[0] == cluster)
        ]
        for key in keys:
            self.queue.add(key)
        log.info(
            "event=%s app=%s cluster=%s targets=%d",
            "suspended" if suspended else "resumed",
            app or "*",
            cluster or "*",
            len(keys),
        )
        return keys
