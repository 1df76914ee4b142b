"""One reconcile of one (cluster, app) key: desired state, the free no-op, sync, then the summary.

The steps, in order:
1. find the cluster's connection and the app (gone: the key is dropped);
2. the desired set from the shared pipeline (one fetch and one render serve many keys);
3. **the free no-op**: when the desired digest and commit equal what this key last applied, no
   drift was seen since, the app was not Progressing and the last full check is younger than the
   resync interval, nothing is read or written;
4. otherwise sync (reads, then only the writes needed; prune by the app's rules);
5. the summary, which always runs: status board, history row, metrics, and what to do next
   (recheck soon while Progressing, resync later, back off on failure).

A failed render keeps the last good set and changes nothing in the cluster (``stale``): the cell
shows the error, and the next commit enqueues the key again. Transient failures raise, so the
queue backs the key off; stalled ones do not retry until their input changes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet import apply
from fleet.config import App, Config
from fleet.errors import FleetError, StalledError, TransientError
from fleet.health import Status
from fleet.hub import apps
from fleet.hub.connections import Connection
from fleet.hub.settings import HubSettings
from fleet.reconcile.desired import Desired, DesiredState
from fleet.reconcile.syncing import SyncResult, sync
from fleet.report import Board, History, Metrics, SyncRecord

__all__ = ["Applied", "Reconciler"]

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (cluster, app)


class _Recorded(TransientError):
    """Objects failed to apply; the summary recorded it, the queue backs the key off."""


@dataclass
class Applied:
    """What a key last applied, for the free no-op."""

    digest: str
    commit: str
    checked_at: float
    health: Status
    drift: bool = False


@dataclass
class Reconciler:
    """The queue's handler, with the state it keeps between runs."""

    settings: HubSettings
    desired: DesiredState
    board: Board
    history: History
    metrics: Metrics
    config: Config = field(default_factory=Config)
    connections: dict[str, Connection] = field(default_factory=dict)
    applied: dict[Key, Applied] = field(default_factory=dict)
    commit_times: dict[str, float] = field(default_factory=dict)
    on_applied: Callable[[Key], None] | None = None  # after each full sync (drift watches)
    on_changing: Callable[[Key], None] | None = None  # before applying a new desired set

    def selects(self, app: App, cluster: str) -> bool:
        """Whether `app` goes to the connected cluster named `cluster`."""
        conn = self.connections.get(cluster)
        return conn is not None and app.destination.clusters.matches(
            conn.file.ref, server=conn.file.server
        )

    def targets(self, app: App) -> list[str]:
        """The clusters `app` goes to, among those connected."""
        return sorted(name for name in self.connections if self.selects(app, name))

    async def __call__(self, key: Key) -> float | None:
        started = time.time()
        try:
            return await self._reconcile(key, started)
        except _Recorded:
            raise  # the summary has already written board, history and metrics
        except (FleetError, OSError) as exc:
            self._failed(key, started, exc)
            raise

    async def _reconcile(self, key: Key, started: float) -> float | None:
        cluster_name, app_name = key
        connection = self.connections.get(cluster_name)
        app = self.config.app(app_name)
        if connection is None or app is None or not self.selects(app, cluster_name):
            self.applied.pop(key, None)
            return None
        if connection.cluster is None:
            raise StalledError(connection.error or f"cluster {cluster_name} is not connected")
        desired = await self.desired.desired(apps.app_source(app), connection.file.ref)
        if desired.rendered is not None and desired.error is None:
            self.metrics.renders.labels(result="render" if desired.rendered_now else "hit").inc()
        cell = self.board.cell(app_name, cluster_name)
        if desired.error is not None or desired.rendered is None or desired.commit is None:
            return self._not_rendered(key, desired, started)
        rendered = apps.with_namespace(app, connection.file.ref, desired.rendered)
        commit = desired.commit
        desired = dataclasses.replace(desired, rendered=rendered)
        last = self.applied.get(key)
        if (
            last is not None
            and last.digest == rendered.digest
            and last.commit == commit
            and not last.drift
            and last.health is not Status.PROGRESSING
            and started - last.checked_at < self.settings.resync_interval
        ):
            cell.error = ""
            self.metrics.reconcile_seconds.labels(result="noop").observe(time.time() - started)
            return self.settings.resync_interval - (started - last.checked_at)
        changing = last is None or last.digest != rendered.digest
        if changing and self.on_changing is not None:
            self.on_changing(key)  # the old set's drift watch would take our own write for drift
        result = await sync(
            connection.cluster, apps.app_sync(app, connection.file.ref), rendered, revision=commit
        )
        return await self._summarise(key, desired, result, started)

    def _not_rendered(self, key: Key, desired: Desired, started: float) -> float | None:
        cell = self.board.cell(key[1], key[0])
        error = desired.error or StalledError("nothing rendered")
        cell.error = str(error)
        cell.sync = "Unknown" if desired.rendered is None else cell.sync
        self._record(key, started, result="failed", revision=desired.commit or "", error=str(error))
        self.metrics.reconcile_seconds.labels(result="render-failed").observe(time.time() - started)
        if isinstance(error, TransientError):
            raise error
        return None  # stalled: the next commit or config change enqueues the key again

    async def _summarise(
        self, key: Key, desired: Desired, result: SyncResult, started: float
    ) -> float | None:
        assert desired.rendered is not None and desired.commit is not None
        cluster_name, app_name = key
        finished = time.time()
        counts = result.changes.counts()
        cell = self.board.cell(app_name, cluster_name)
        cell.revision = desired.commit
        cell.health = result.health.status.value
        cell.sync = "Synced" if result.in_sync else "OutOfSync"
        cell.changes = counts
        cell.last_sync_at = finished
        failures = result.changes.of(apply.Outcome.FAILED)
        refused = result.plan.refused
        cell.error = "; ".join(
            [f"{c.key}: {c.reason}" for c in failures[:3]] + ([str(refused)] if refused else [])
        )
        cell.last_result = "failed" if failures else "synced"
        wrote = any(v for k, v in counts.items() if k not in ("unchanged", "skipped"))
        if wrote or failures or cell.drift_since is not None:
            committed = await self._commit_time(desired)
            self._record(
                key,
                started,
                result=cell.last_result,
                revision=desired.commit,
                error=cell.error,
                counts=counts,
                committed_at=committed,
                health=cell.health,
                finished=finished,
            )
            if committed is not None and wrote:
                self.metrics.commit_to_applied_seconds.observe(max(0.0, finished - committed))
        cell.drift_since = None
        self.applied[key] = Applied(
            digest=desired.rendered.digest,
            commit=desired.commit,
            checked_at=finished,
            health=result.health.status,
        )
        self.metrics.reconcile_seconds.labels(result=cell.last_result).observe(finished - started)
        if self.on_applied is not None:
            self.on_applied(key)
        log.info(
            "event=reconciled cluster=%s app=%s revision=%s sync=%s health=%s changes=%s "
            "seconds=%.3f",
            cluster_name,
            app_name,
            desired.commit[:12],
            cell.sync,
            cell.health,
            counts,
            finished - started,
        )
        if failures:
            raise _Recorded(f"app {app_name} on cluster {cluster_name}: {cell.error}")
        if result.health.status is Status.PROGRESSING:
            return self.settings.progress_recheck
        return self.settings.resync_interval

    def mark_drift(self, key: Key) -> None:
        """Drift was seen on `key`: the next reconcile is a full one."""
        cell = self.board.cell(key[1], key[0])
        if cell.drift_since is None:
            cell.drift_since = time.time()
        cell.sync = "OutOfSync"
        if key in self.applied:
            self.applied[key].drift = True

    def _failed(self, key: Key, started: float, exc: BaseException) -> None:
        cell = self.board.cell(key[1], key[0])
        cell.error = str(exc)
        cell.last_result = "failed"
        self._record(key, started, result="failed", revision=cell.revision, error=str(exc))
        self.metrics.reconcile_seconds.labels(result="failed").observe(time.time() - started)

    def _record(
        self,
        key: Key,
        started: float,
        *,
        result: str,
        revision: str,
        error: str = "",
        counts: dict[str, int] | None = None,
        committed_at: float | None = None,
        health: str = "",
        finished: float | None = None,
    ) -> None:
        counts = counts or {}
        self.history.record(
            SyncRecord(
                app=key[1],
                cluster=key[0],
                revision=revision,
                started_at=started,
                finished_at=finished or time.time(),
                result=result,
                created=counts.get("created", 0),
                configured=counts.get("configured", 0),
                unchanged=counts.get("unchanged", 0),
                pruned=counts.get("pruned", 0),
                failed=counts.get("failed", 0),
                error=error[:2000],
                committed_at=committed_at,
                health=health,
            )
        )

    async def _commit_time(self, desired: Desired) -> float | None:
        commit = desired.commit
        if commit is None:
            return None
        if commit not in self.commit_times:
            app = self.config.app(desired.app)
            if app is None:
                return None
            try:
                out = await self.desired.sources.mirror(app.source.repo_url).local_git(
                    "show", "-s", "--format=%ct", commit
                )
                self.commit_times[commit] = float(out.decode().strip())
            except (FleetError, ValueError):
                return None
        return self.commit_times[commit]
