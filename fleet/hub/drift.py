"""Drift watches: one per synced (cluster, app), restarted when the app's desired set changes.

A watch (:func:`fleet.reconcile.drifting.watch_drift`) follows the app's objects on its cluster
and reports writes made by someone else. It never heals by itself: the hub marks the key (so the
next reconcile is a full one, not the free no-op) and, with ``selfHeal``, enqueues it, so the
queue's promise holds — one worker per key, never a watch and a worker writing at once. A watch
is stopped before fleet applies a new desired set (it would take fleet's own write for drift)
and started again after, on the new set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import anyio.abc

from fleet.config import App
from fleet.hub import apps
from fleet.hub.connections import Connection
from fleet.hub.reconciling import Key, Reconciler
from fleet.reconcile import drifting
from fleet.reconcile.desired import DesiredState
from fleet.types import ObjectKey

__all__ = ["DriftWatches"]

log = logging.getLogger(__name__)


class DriftWatches:
    """The running watches, by key, each with the digest of the set it watches."""

    def __init__(
        self,
        *,
        group: anyio.abc.TaskGroup,
        reconciler: Reconciler,
        desired: DesiredState,
        enqueue: Callable[[Key], None],
        resync: float,
    ) -> None:
        self._group = group
        self._reconciler = reconciler
        self._desired = desired
        self._enqueue = enqueue
        self._resync = resync
        self._running: dict[Key, tuple[str, anyio.CancelScope]] = {}

    def keys(self) -> list[Key]:
        return list(self._running)

    def watch(self, key: Key) -> None:
        """(Re)start the watch of `key` if its desired set changed since the watch began."""
        last = self._reconciler.targets.get(key)
        connection = self._reconciler.connections.get(key[0])
        app = self._reconciler.config.app(key[1])
        if last is None or not last.applied_digest or connection is None or app is None:
            return
        if connection.cluster is None:
            return
        current = self._running.get(key)
        if current is not None and current[0] == last.applied_digest:
            return
        self.stop(key)
        rendered = self._desired.last_good(key[1], key[0])
        if rendered is None:
            return
        scope = anyio.CancelScope()
        self._running[key] = (last.applied_digest, scope)
        self._group.start_soon(self._run, key, app, connection, scope, last.applied_commit)

    def stop(self, key: Key) -> None:
        current = self._running.pop(key, None)
        if current is not None:
            current[1].cancel()

    def stop_where(self, predicate: Callable[[Key], bool]) -> None:
        for key in [k for k in self._running if predicate(k)]:
            self.stop(key)

    async def _run(
        self, key: Key, app: App, connection: Connection, scope: anyio.CancelScope, commit: str
    ) -> None:
        last_good = self._desired.last_good(key[1], key[0])
        cluster = connection.cluster
        if last_good is None or cluster is None:
            return
        rendered = apps.with_namespace(app, connection.file.ref, last_good)

        async def on_drift(keys: list[ObjectKey], _healed: object) -> None:
            log.info("event=drift_seen cluster=%s app=%s objects=%d", key[0], key[1], len(keys))
            self._reconciler.mark_drift(key, objects=len(keys))
            if app.sync_policy.self_heal:
                self._enqueue(key)

        with scope:
            try:
                await drifting.watch_drift(
                    cluster,
                    apps.app_sync(app, connection.file.ref),
                    rendered,
                    self_heal=False,
                    on_drift=on_drift,
                    revision=commit,
                    resync=self._resync,
                )
            except Exception as exc:  # a failed watch must not stop the hub; resync covers it
                log.warning(
                    "event=drift_watch_failed cluster=%s app=%s error=%s", key[0], key[1], exc
                )
                if self._running.get(key, (None, None))[1] is scope:
                    del self._running[key]
