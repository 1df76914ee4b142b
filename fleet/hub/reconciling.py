"""One reconcile of one target, (cluster, app): desired state, the free no-op, sync, summary.

The steps, in order:
1. find the cluster's connection and the app (gone: the target's record is dropped);
2. the desired set from the shared pipeline (one fetch and one render serve many targets);
3. **the free no-op**: when the record says the desired digest and commit are applied, Synced,
   no drift since, not Progressing, not just resumed, and the last full check is younger than
   the resync interval, nothing is read or written;
4. otherwise sync (reads, then only the writes needed; prune by the app's rules);
5. **the summary, which always runs**, whatever happened above (an exception included): the
   attempt is described as an :class:`~fleet.reconcile.summary.Attempt`, the pure
   :func:`~fleet.reconcile.summary.summarise` makes the new record, and
   :meth:`~fleet.report.Targets.commit` stores and publishes it (board, history, metrics, log,
   sinks). Nothing else writes status.

What happens next follows the error's class: transient failures raise (the queue backs the key
off, the circuit breaker counts outages), stalled ones return without a retry until the input
changes, success asks to be looked at again after the resync interval (or soon while
Progressing). An exception of any class ends as the target's error, never as the worker's end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet import apply, plan
from fleet.cache import SingleFlight
from fleet.config import App, Config
from fleet.errors import FleetError, StalledError, TransientError, describe
from fleet.hub import apps
from fleet.hub.cells import Cells, Expected
from fleet.hub.connections import Connection
from fleet.hub.settings import HubSettings
from fleet.reconcile import summary, superseding
from fleet.reconcile.desired import Desired, DesiredState
from fleet.reconcile.syncing import AppSync, SyncResult, sync
from fleet.reconcile.writebehind import WriteBehind
from fleet.report import Metrics, Targets, TargetStatus
from fleet.runtime import is_outage
from fleet.sources import ancestry
from fleet.types import ObjectKey

__all__ = ["Key", "Reconciler", "unreachable"]

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (cluster, app)


def unreachable(exc: BaseException) -> bool:
    """The cluster did not answer: a transport error, also when wrapped by the apply client."""
    if isinstance(exc, BaseExceptionGroup):
        return any(unreachable(e) for e in exc.exceptions)
    if is_outage(exc):
        return True
    status = getattr(exc, "status", None)
    return isinstance(exc, TransientError) and status == 0


class _Recorded(TransientError):
    """The summary recorded a failed sync; raised so the queue backs the key off."""


@dataclass
class Reconciler:
    """The queue's handler. Per-target state lives in `targets`, nowhere else."""

    settings: HubSettings
    desired: DesiredState
    targets: Targets
    metrics: Metrics
    config: Config = field(default_factory=Config)
    connections: dict[str, Connection] = field(default_factory=dict)
    commit_times: dict[str, float] = field(default_factory=dict)
    _commit_flight: SingleFlight[str, float | None] = field(default_factory=SingleFlight)
    force_full: set[Key] = field(default_factory=set)  # next run reads everything (a reconnect)
    cells: Cells | None = None  # the clusters' live caches: reads, drift, the cached resync
    suspended: Callable[[Key], bool] = lambda _key: False  # an operator's suspensions
    sync_requests: dict[Key, bool] = field(default_factory=dict)  # manual syncs asked: prune?
    behind: WriteBehind = field(default_factory=WriteBehind)  # records that only move a revision

    def selects(self, app: App, cluster: str) -> bool:
        """Whether `app` goes to the connected cluster named `cluster`."""
        conn = self.connections.get(cluster)
        return conn is not None and app.destination.clusters.matches(
            conn.file.ref, server=conn.file.server
        )

    def targets_of(self, app: App) -> list[str]:
        """The clusters `app` goes to, among those connected (only those it names, if it names
        any: an app per cluster entry made a match of every connection per app quadratic)."""
        names = app.destination.clusters.names
        candidates = dict.fromkeys(n for n in names if n in self.connections) if names else None
        return sorted(
            name
            for name in (self.connections if candidates is None else candidates)
            if self.selects(app, name)
        )

    async def __call__(self, key: Key) -> float | None:
        started = time.time()
        previous = self.targets.status(key)
        try:
            return await self._reconcile(key, previous, started)
        except _Recorded:
            raise  # the summary has run
        except Exception as exc:
            self._summarise_error(previous, started, exc)
            if isinstance(exc, FleetError | OSError) or unreachable(exc):
                raise
            log.exception("event=reconcile_crashed cluster=%s app=%s", key[0], key[1])
            raise TransientError(describe(exc)) from exc

    def _admit(
        self, key: Key, previous: TargetStatus, started: float
    ) -> tuple[Connection, apply.Cluster, App] | None:
        """The target's connection, client and app, or None when there is nothing to do: the
        target is gone (its record dropped), suspended, or its named cluster is missing."""
        cluster_name, app_name = key
        connection = self.connections.get(cluster_name)
        app = self.config.app(app_name)
        named = app is not None and cluster_name in app.destination.clusters.names
        if connection is None and named:
            cause = f"cluster {cluster_name} is named by the app but has no kubeconfig in clusters/"
            self._commit(previous, self._attempt(previous, started, unreachable=cause))
            return None
        if connection is None or app is None or not self.selects(app, cluster_name):
            self.targets.forget(key, message="no longer a target of the config")
            if self.cells is not None:
                self.cells.unwatch(key)
            return None
        if self.suspended(key):
            self._commit(previous, self._attempt(previous, started, suspended=True))
            return None
        if connection.cluster is None:
            cause = connection.error or f"cluster {cluster_name} is not connected"
            self._commit(previous, self._attempt(previous, started, unreachable=cause))
            return None  # like a stalled error: the cluster's next change enqueues it again
        return connection, connection.cluster, app

    async def _reconcile(self, key: Key, previous: TargetStatus, started: float) -> float | None:
        cluster_name, app_name = key
        admitted = self._admit(key, previous, started)
        if admitted is None:
            return None
        connection, cluster, app = admitted
        refused = apps.source_refusal(app)  # before any fetch of a repository the project denies
        if refused:
            raise StalledError(refused)
        desired = await self.desired.desired(apps.app_source(app), connection.file.ref)
        if desired.error is not None or desired.rendered is None or desired.commit is None:
            return self._not_rendered(previous, desired, started)
        self.metrics.renders.labels(result="render" if desired.rendered_now else "hit").inc()
        rendered = apps.with_namespace(app, connection.file.ref, desired.rendered)
        commit = desired.commit
        requested = self.sync_requests.pop(key, None)
        preview = not _automated(app) and requested is None  # manual: compare, never write
        if key in self.force_full or requested is not None:
            self.force_full.discard(key)
        elif self._free(previous, commit, rendered.digest, started):
            self.metrics.reconcile_seconds.labels(result="noop").observe(time.time() - started)
            assert previous.checked_at is not None
            remaining = self.settings.resync_interval - (started - previous.checked_at)
            return remaining if remaining > 0 else self.settings.resync_interval
        attempt = self._attempt(
            previous, started, commit=commit, digest=rendered.digest, preview=preview
        )
        app_sync = apps.app_sync(
            app, connection.file.ref, consent=bool(requested), hub=self.settings.hub_id
        )
        mirror = self.desired.sources.mirror(app.source.repo_url)
        reader = self.cells.reader(cluster_name) if self.cells is not None else None
        own_writes = self.cells.syncing(key) if self.cells is not None else contextlib.nullcontext()
        with own_writes:  # until it watches what it applied, its events are its own writes
            result = await sync(
                cluster,
                app_sync,
                rendered,
                revision=commit,
                reader=reader,
                dry_run=preview,
                descends=functools.partial(ancestry.is_ancestor, mirror),
                superseded=superseding.newer_commit(
                    lambda: mirror.refs_seen, revision=app.source.target_revision, running=commit
                ),
                behind=self.behind,
            )
            outcome = summary.outcome_of(result)
            committed_at = await self._commit_time(app, commit) if outcome.wrote else None
            attempt = dataclasses.replace(
                attempt, finished=time.time(), result=outcome, committed_at=committed_at
            )
            status = self._commit(previous, attempt)
            if committed_at is not None and outcome.in_sync:
                self.metrics.commit_to_applied_seconds.observe(max(0.0, time.time() - committed_at))
            cells = self.cells if self._still_configured(key) else None
            if cells is not None and not (preview and outcome.pending):
                cells.watch(key, tracking=result.tracking, expected=_expected(result, app_sync))
        log.info(
            "event=reconciled cluster=%s app=%s commit=%s sync=%s health=%s seconds=%.3f",
            cluster_name,
            app_name,
            commit[:12],
            status.sync,
            status.health,
            attempt.finished - started,
        )
        if result.superseded is not None:
            if requested is not None:  # an operator's sync carries over to the newer commit
                self.sync_requests.setdefault(key, requested)
            return 0.0  # a newer commit is known: its sync starts at once
        # failed objects back off; a conflict, a refusal or a held prune waits for its input
        if not preview and result.changes.of(apply.Outcome.FAILED):
            raise _Recorded(f"app {app_name} on cluster {cluster_name}: {status.error}")
        if status.health == "Progressing":
            return self.settings.progress_recheck
        return self.settings.resync_interval

    def _free(self, previous: TargetStatus, commit: str, digest: str, started: float) -> bool:
        """The free no-op: nothing has changed since the last full check, and either that check
        is recent or the cluster's warm live cache shows every object as it was applied."""
        unchanged = (
            previous.sync == "Synced"
            and not previous.error
            and previous.applied_commit == commit
            and previous.applied_digest == digest
            and previous.drift_since is None
            and not previous.suspended  # just resumed: a full look records it resumed
            and previous.health != "Progressing"
            and previous.checked_at is not None
        )
        if not unchanged:
            return False
        assert previous.checked_at is not None
        if started - previous.checked_at < self.settings.resync_interval:
            return True
        return self.cells is not None and self.cells.in_sync(previous.key) is True

    def _attempt(self, previous: TargetStatus, started: float, **fields: object) -> summary.Attempt:
        base = summary.Attempt(
            started=started, finished=time.time(), drift_generation=previous.drift_generation
        )
        return dataclasses.replace(base, **fields)  # type: ignore[arg-type]

    def _commit(self, previous: TargetStatus, attempt: summary.Attempt) -> TargetStatus:
        """The summary step: the new record from the attempt, stored and published."""
        current = self.targets.status(previous.key)  # a drift may have landed meanwhile
        status, events = summary.summarise(current, attempt)
        if not attempt.noop and self._still_configured(previous.key):
            self.targets.commit(status, events)
        result = "noop" if attempt.noop else ("failed" if status.error else "synced")
        self.metrics.reconcile_seconds.labels(result=result).observe(
            attempt.finished - attempt.started
        )
        return status

    def _still_configured(self, key: Key) -> bool:
        """Whether the target's app is still in the config: one that left while its reconcile
        ran was forgotten (its record and watches dropped) and must not come back with it."""
        return self.config.app(key[1]) is not None

    def _not_rendered(
        self, previous: TargetStatus, desired: Desired, started: float
    ) -> float | None:
        error = desired.error or StalledError("nothing rendered")
        attempt = self._attempt(
            previous,
            started,
            commit=desired.revision or "",
            render_error=describe(error),
            stalled=not isinstance(error, TransientError),
        )
        self._commit(previous, attempt)
        if isinstance(error, TransientError):
            raise _Recorded(str(error))
        return None  # stalled: the next commit or config change enqueues the key again

    def _summarise_error(self, previous: TargetStatus, started: float, exc: Exception) -> None:
        text = describe(exc)
        if unreachable(exc):
            cause = f"cluster {previous.cluster} is unreachable: {text}"
            attempt = self._attempt(previous, started, unreachable=cause)
        else:
            reason = "SyncFailed" if isinstance(exc, FleetError | OSError) else "InternalError"
            attempt = self._attempt(
                previous,
                started,
                error=text,
                error_reason=reason,
                stalled=isinstance(exc, StalledError),
            )
        self._commit(previous, attempt)

    def mark_drift(self, key: Key, *, objects: int = 1) -> None:
        """Drift was seen on `key`: OutOfSync, and the next reconcile is a full one."""
        previous = self.targets.get(key)
        if previous is None:
            return
        status, events = summary.drifted(previous, now=time.time(), objects=objects)
        self.targets.commit(status, events)

    def mark_in_sync(self, key: Key, health: str) -> None:
        """The cell shows every object of `key` as applied again (a drift put back by hand), with
        `health` judged from those objects: the drift is cleared, Synced again when nothing else
        keeps it OutOfSync, green only if that health is Healthy."""
        previous = self.targets.get(key)
        if previous is None or previous.drift_since is None:
            return
        status, events = summary.undrifted(previous, now=time.time(), health=health)
        self.targets.commit(status, events)
        log.info("event=drift_cleared cluster=%s app=%s sync=%s", key[0], key[1], status.sync)

    def cluster_unreachable(self, cluster: str, cause: str) -> None:
        """Every target of `cluster` is Unknown until the cluster answers again."""
        now = time.time()
        for key in self.targets.of_cluster(cluster):
            status, events = summary.unreachable(self.targets.status(key), now=now, cause=cause)
            self.targets.commit(status, events)

    async def _commit_time(self, app: App, commit: str) -> float | None:
        """When `commit` was made: one ``git show`` per commit, shared by every target that
        applies it at once (a commit reaching N clusters asks once, not N times)."""
        if commit not in self.commit_times:

            async def ask() -> float | None:
                try:
                    out = await self.desired.sources.mirror(app.source.repo_url).local_git(
                        "show", "-s", "--format=%ct", commit
                    )
                    return float(out.decode().strip())
                except (FleetError, ValueError):
                    return None

            when = await self._commit_flight.do(commit, ask)
            if when is None:
                return None
            self.commit_times[commit] = when
        return self.commit_times[commit]


def _expected(result: SyncResult, app: AppSync) -> dict[ObjectKey, Expected]:
    """What the sync left each of the target's objects as, for the drift check of its cell."""
    failed = {c.key for c in result.changes.changes if c.outcome.value in _NOT_APPLIED}
    return {
        step.key: Expected(
            api_version=step.api_version,
            manifest=step.manifest,
            ignore=plan.pointers_for(app.ignore, step.key),
        )
        for step in result.plan.applies
        if step.key not in failed
    }


_NOT_APPLIED = {"failed", "conflict", "refused", "skipped"}


def _automated(app: App) -> bool:
    """Whether fleet applies the app's changes by itself (Argo CD's ``syncPolicy.automated``);
    an app without it is compared and shown OutOfSync, and applied only when an operator syncs."""
    return bool(getattr(app.sync_policy, "automated", True))
