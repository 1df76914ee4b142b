"""The hub: one process, one anyio task group, every app on every cluster kept in sync.

Services of the task group, each started with a ready handshake:
- the **scheduler**: a worker pool over the work queue of (cluster, app) keys, fair per cluster,
  with a circuit breaker per cluster (a dead cluster is parked, never blocks the others);
- the **cluster registry**: ``clusters/`` watched; a join connects and enqueues its apps, a change
  reconnects, a removal stops that cluster's work (nothing is deleted in the cluster);
- the **config watcher**: ``fleet.yaml`` re-read when it changes; a bad file keeps the last good
  config running and shows its error;
- the **source poller**: one ``ls-remote`` per repository per interval for the whole fleet; a
  moved ref enqueues exactly the keys of the apps reading that repository. Webhooks do the same at
  once (:meth:`Hub.on_push`), so a pushed commit starts applying in milliseconds;
- **drift watchers**, one per synced (cluster, app): a change by someone else marks the key and,
  with selfHeal, enqueues it;
- the **HTTP server**: webhooks, health, metrics, JSON status, the status page;
- the **tunnels** (:class:`~fleet.transport.Tunnels`, open for the hub's lifetime): clusters behind
  an SSH bastion are dialled through them; a check every ``_REACH_CHECK`` seconds shows each
  tunnel on the board (down: parked; refused: an error naming the cluster and the cause) and
  enqueues a cluster's apps when its tunnel comes back.

:meth:`Hub.stop` (SIGTERM) stops taking work, lets in-flight reconciles finish for at most
``drain_timeout``, then cancels the rest. A SIGKILL loses nothing a restart does not redo: the
inventory lives in the clusters, and every key is enqueued again on start.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import anyio
import anyio.abc

from fleet.cache import CacheSettings, ManifestCache
from fleet.config import Config
from fleet.config import loading as config_loading
from fleet.errors import ConfigError, TransientError
from fleet.hub import server, webhooks
from fleet.hub.connections import Connections, show_reach
from fleet.hub.drift import DriftWatches
from fleet.hub.reconciling import Key, Reconciler
from fleet.hub.settings import HubSettings
from fleet.hub.stats import StatsCollector
from fleet.reconcile.desired import DesiredState
from fleet.render import Renderer, RenderSettings
from fleet.report import Board, ClusterState, History, Metrics
from fleet.runtime import (
    Breakers,
    BreakerState,
    BreakerStatus,
    Limits,
    RealClock,
    Scheduler,
    WorkQueue,
    call_with_retry,
    default_limiter,
    is_outage,
    registry,
)
from fleet.sources import Sources, SourceSettings, repo_id
from fleet.transport import Tunnels, TunnelSettings

__all__ = ["Hub", "unreachable"]

log = logging.getLogger(__name__)

_REACH_CHECK = 0.5  # seconds between looks at the SSH tunnels' states


def unreachable(exc: BaseException) -> bool:
    """The cluster did not answer: a transport error, also when wrapped by the apply client."""
    if isinstance(exc, BaseExceptionGroup):
        return any(unreachable(e) for e in exc.exceptions)
    if is_outage(exc):
        return True
    status = getattr(exc, "status", None)
    return isinstance(exc, TransientError) and status == 0


def _stamp(path: Path) -> tuple[tuple[str, float, int], ...] | None:
    """What changes when the config file, or any file of a config directory, changes."""
    try:
        files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        return tuple((str(f), f.stat().st_mtime, f.stat().st_size) for f in files)
    except OSError:
        return None


class Hub:
    """``fleet run``."""

    def __init__(self, settings: HubSettings) -> None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.clusters_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.clock = RealClock()
        self.board = Board()
        self.metrics = Metrics()
        self.history = History(settings.history_path)
        # listings come from the poller and webhooks: a reconcile reuses the last one and never
        # lists by itself, so a repository costs one ls-remote per poll interval, fleet-wide
        listing_ttl = 2 * settings.poll_interval
        self.sources = Sources(
            SourceSettings(
                cache_dir=settings.cache_dir,
                interval=listing_ttl,
                credentials_file=settings.credentials_file,
            )
        )
        self.desired = DesiredState(
            sources=self.sources,
            renderer=Renderer(RenderSettings(helm=settings.helm)),
            cache=ManifestCache(CacheSettings(root=settings.cache_dir / "render")),
        )
        self.queue: WorkQueue[Key] = WorkQueue(
            clock=self.clock,
            rate_limiter=default_limiter(clock=self.clock),
            on_depth=self.metrics.queue_depth.set,
        )
        self.limits = Limits(settings.limits, clock=self.clock)
        self.breakers = Breakers(
            settings.breaker, clock=self.clock, trips=unreachable, on_change=self._breaker_changed
        )
        self.reconciler = Reconciler(
            settings=settings,
            desired=self.desired,
            board=self.board,
            history=self.history,
            metrics=self.metrics,
            on_applied=self._watch_drift,
            on_changing=self._stop_drift,
        )
        self.scheduler: Scheduler[Key] = Scheduler(
            self.reconciler,
            settings.scheduler,
            queue=self.queue,
            clock=self.clock,
            breakers=self.breakers,
        )
        self.registry = registry.ClusterRegistry(
            settings.clusters_dir, self._cluster_changed, rescan_interval=settings.registry_rescan
        )
        self.port = 0
        self._ready = False
        self._config_stamp: tuple[tuple[str, float, int], ...] | None = None
        self._drift: DriftWatches | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._connections: Connections | None = None
        self.tunnel_settings = TunnelSettings()  # SSH links of clusters behind a bastion
        self._stopping = anyio.Event()
        self.metrics.registry.register(StatsCollector(self))

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until :meth:`stop`; reports the HTTP port once every service is ready."""
        try:
            async with (
                Tunnels(self.tunnel_settings) as tunnels,
                anyio.create_task_group() as group,
            ):
                self._group = group
                self._connections = Connections(
                    group=group, limits=self.limits, on_status=self._api_status, tunnels=tunnels
                )
                self.reconciler.connections = self._connections.by_name
                self._drift = DriftWatches(
                    group=group,
                    reconciler=self.reconciler,
                    desired=self.desired,
                    enqueue=self.queue.add,
                    resync=self.settings.resync_interval,
                )
                self._load_config()
                await group.start(self.scheduler.run)
                await group.start(self.registry.run)
                group.start_soon(self._watch_config)
                group.start_soon(self._poll_sources)
                group.start_soon(self._collect_cache)
                group.start_soon(self._watch_tunnels)
                self.port = await group.start(server.serve, self, self.settings.server)
                self._ready = True
                log.info(
                    "event=hub_ready port=%d clusters=%d apps=%d",
                    self.port,
                    len(self._connections.by_name),
                    len(self.reconciler.config.apps),
                )
                task_status.started(self.port)
                await self._stopping.wait()
                self._ready = False
                self.scheduler.stop()
                with anyio.move_on_after(self.settings.drain_timeout):
                    await self.queue.drain()
                group.cancel_scope.cancel()
        finally:
            self.history.close()

    def stop(self) -> None:
        """Begin a graceful stop (SIGTERM)."""
        self._stopping.set()

    def readiness(self) -> tuple[bool, str]:
        if not self._ready:
            return False, "starting"
        if self.board.config_error and not self.reconciler.config.apps:
            return False, f"no valid config: {self.board.config_error}"
        return True, "ready"

    # -- config -----------------------------------------------------------------------------------

    def _load_config(self) -> None:
        path = self.settings.config_path
        stamp = _stamp(path)
        if stamp == self._config_stamp and (stamp is not None or self.board.config_error):
            return  # unchanged (a missing file is reported once, not every check)
        self._config_stamp = stamp
        try:
            config = config_loading.load(path)
        except ConfigError as exc:
            self.board.config_error = str(exc)
            log.warning("event=config_invalid error=%s (the last good config stays in use)", exc)
            return
        self.board.config_error = ""
        self._apply_config(config)

    def _apply_config(self, config: Config) -> None:
        old = {a.name: a for a in self.reconciler.config.apps}
        self.reconciler.config = config
        new = {a.name: a for a in config.apps}
        gone = set(old) - set(new)
        for name in gone:
            self.board.forget_app(name)
        if self._drift is not None:
            self._drift.stop_where(lambda key: key[1] in gone)
        for name, app in new.items():
            if old.get(name) != app:
                self._enqueue_app(name)
        log.info("event=config_loaded apps=%d", len(new))

    async def _watch_config(self) -> None:
        while True:
            await anyio.sleep(self.settings.config_check_interval)
            self._load_config()

    # -- clusters ---------------------------------------------------------------------------------

    async def _cluster_changed(self, change: registry.Change) -> None:
        assert self._connections is not None
        name = change.name
        if change.kind == "left":
            self._connections.close(name)
            self.breakers.drop(name)
            self.board.forget_cluster(name)
            if self._drift is not None:
                self._drift.stop_where(lambda key: key[0] == name)
            for key in [k for k in self.reconciler.applied if k[0] == name]:
                del self.reconciler.applied[key]
            return
        entry = change.entry
        assert entry is not None
        if entry.error or entry.cluster is None:
            state = self.board.clusters.setdefault(name, ClusterState(name))
            state.error = entry.error or "unreadable"
            if self._connections.get(name) is None:
                state.state = "error"
            else:
                state.error += " (the last good kubeconfig stays in use)"
            return
        if self._drift is not None:
            self._drift.stop_where(lambda key: key[0] == name)
        connection = await self._connections.open(entry.cluster)
        state = ClusterState(name, labels=dict(entry.cluster.ref.labels))
        state.state, state.error = (
            ("error", connection.error)
            if connection.error
            else ("connecting" if connection.via else "ready", "")
        )
        self.board.clusters[name] = state
        for key in [k for k in self.reconciler.applied if k[0] == name]:
            del self.reconciler.applied[key]
        for app in self.reconciler.config.apps:
            if self.reconciler.selects(app, name):
                self.queue.add((name, app.name))

    def _breaker_changed(self, status: BreakerStatus) -> None:
        state = self.board.clusters.get(status.cluster)
        if state is None:
            return
        if status.state is BreakerState.OPEN:
            state.state, state.error = "parked", f"unreachable: {status.last_error}"
        elif status.state is BreakerState.CLOSED and state.state == "parked":
            state.state, state.error = "ready", ""

    def _api_status(self, cluster: str, status: int) -> None:
        self.metrics.api_requests.labels(cluster=cluster, code=str(status)).inc()

    async def _watch_tunnels(self) -> None:
        assert self._connections is not None
        while True:
            await anyio.sleep(_REACH_CHECK)
            for reach in self._connections.reach():
                state = self.board.clusters.get(reach.cluster)
                if state is not None:
                    breaker = self.breakers.for_cluster(reach.cluster)
                    show_reach(state, reach, parked=breaker.state is BreakerState.OPEN)
                if reach.recovered:  # the tunnel is back: no need to wait for the next probe
                    self.breakers.for_cluster(reach.cluster).success()
                for app in self.reconciler.config.apps if reach.recovered else ():
                    if self.reconciler.selects(app, reach.cluster):
                        self.queue.add((reach.cluster, app.name))

    # -- sources ----------------------------------------------------------------------------------

    def _enqueue_app(self, name: str) -> None:
        app = self.reconciler.config.app(name)
        if app is not None:
            for cluster in self.reconciler.targets(app):
                self.queue.add((cluster, name))

    def _apps_of_repo(self, key: str) -> list[str]:
        return [
            a.name for a in self.reconciler.config.apps if repo_id(a.source.repo_url).key == key
        ]

    async def _refresh(self, url: str) -> None:
        try:  # a blip of the remote is retried (tenacity); a longer outage waits for the next poll
            moved = await call_with_retry(
                lambda: self.sources.refresh(url), clock=self.clock, what=f"ls-remote {url}"
            )
        except TransientError as exc:
            log.warning("event=poll_failed repo=%s error=%s", url, exc)
            return
        if moved:
            for name in self._apps_of_repo(repo_id(url).key):
                self._enqueue_app(name)

    async def _poll_sources(self) -> None:
        interval = self.settings.poll_interval
        while True:
            jitter = random.uniform(-1, 1) * self.settings.poll_jitter * interval  # noqa: S311
            await anyio.sleep(interval + jitter)
            repos = {
                repo_id(a.source.repo_url).key: a.source.repo_url
                for a in self.reconciler.config.apps
            }
            async with anyio.create_task_group() as group:  # one slow remote never blocks others
                for url in repos.values():
                    group.start_soon(self._refresh, url)

    async def _collect_cache(self) -> None:
        """The render cache is bounded by age and size; everything in it can be rebuilt."""
        while True:
            await anyio.sleep(self.settings.cache_gc_interval)
            removed = await self.desired.cache.gc()
            log.info("event=cache_gc removed=%d", removed)

    async def on_push(self, push: webhooks.Push) -> int:
        """A verified webhook: refresh the repositories it names, enqueue their apps."""
        wanted = {repo_id(url).key for url in push.urls}
        matched = {
            repo_id(a.source.repo_url).key: a.source.repo_url
            for a in self.reconciler.config.apps
            if repo_id(a.source.repo_url).key in wanted
        }
        for url in matched.values():
            assert self._group is not None
            self._group.start_soon(self._refresh, url)
        return len(matched)

    # -- drift ------------------------------------------------------------------------------------

    def _watch_drift(self, key: Key) -> None:
        if self._drift is not None:
            self._drift.watch(key)

    def _stop_drift(self, key: Key) -> None:
        if self._drift is not None:
            self._drift.stop(key)
