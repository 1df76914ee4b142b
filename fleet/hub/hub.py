"""The hub: one process, one anyio task group, every app on every cluster kept in sync.

Services of the task group, each started with a ready handshake:
- the **scheduler**: a worker pool over the work queue of (cluster, app) keys, fair per cluster,
  with a circuit breaker per cluster (a dead cluster is parked, never blocks the others);
- the **cluster registry**: ``clusters/`` watched; a join connects and enqueues its apps, a change
  reconnects, a removal stops that cluster's work (nothing is deleted in the cluster);
- the **config watcher**: ``fleet.yaml`` re-read when it changes; a bad file keeps the last good
  config running and shows its error (:mod:`fleet.hub.configuring`);
- the **source poller**: one ``ls-remote`` per repository per interval for the whole fleet; a
  moved ref enqueues exactly the keys of the apps reading that repository. Webhooks do the same at
  once (:meth:`Hub.on_push`), so a pushed commit starts applying in milliseconds
  (:mod:`fleet.hub.refreshing`);
- the **cells** (:mod:`fleet.hub.cells`), one per connected cluster: one shared watch per kind
  feeding a live cache that syncs read from; a change by someone else to a target's objects marks
  the target drifted and, with selfHeal, enqueues it;
- the **HTTP server**: webhooks, health, metrics, JSON status, the status page;
- the **targets** (:class:`~fleet.report.Targets`): one record per (cluster, app), written only
  by the reconciler's summary step; the board, history, metrics and log subscribe to it;
- the **tunnels** (:class:`~fleet.transport.Tunnels`, open for the hub's lifetime): clusters behind
  an SSH bastion are dialled through them; a check every ``_REACH_CHECK`` seconds shows each
  tunnel on the board (down: parked; refused: an error naming the cluster and the cause) and
  enqueues a cluster's apps when its tunnel comes back.

:meth:`Hub.stop` (SIGTERM) stops taking work, lets in-flight reconciles finish for at most
``drain_timeout``, then cancels the rest. A SIGKILL loses nothing a restart does not redo: the
inventory lives in the clusters, and every key is enqueued again on start.

Every long-lived service runs supervised (:func:`~fleet.runtime.supervised`): an exception
becomes the error of what it concerns (a repository, a cluster, the config), shown on the board
and retried with backoff, never the end of the hub. A repository whose listing fails (a refused
credential, a remote that is down) is that repository's error: it is polled again with backoff,
and every other repository and app carries on.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
from aiohttp import web

from fleet.cache import CacheSettings, ManifestCache
from fleet.config import Config
from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError, describe
from fleet.hub import configured, control, gitconfig, server, webhooks
from fleet.hub.cells import Cells
from fleet.hub.configuring import Configuring
from fleet.hub.connections import Connections, show_reach
from fleet.hub.control import Suspensions
from fleet.hub.operating import Operations
from fleet.hub.pushes import PushOutcome, RepoRefresh
from fleet.hub.reconciling import Key, Reconciler, unreachable
from fleet.hub.refreshing import Refreshing
from fleet.hub.settings import HubSettings
from fleet.hub.stats import StatsCollector
from fleet.notify import Notifier, NotifyCollector
from fleet.reconcile.desired import DesiredState
from fleet.render import Renderer, RenderSettings
from fleet.report import (
    ClusterState,
    HistoryWriter,
    LogWriter,
    Metrics,
    MetricsWriter,
    Targets,
    open_history,
)
from fleet.runtime import (
    Breakers,
    BreakerState,
    BreakerStatus,
    Limits,
    RealClock,
    Scheduler,
    WorkQueue,
    default_limiter,
    registry,
    supervised,
)
from fleet.shard import Shards, handover
from fleet.shard import api as shard_api
from fleet.sources import Sources, SourceSettings
from fleet.transport import Tunnels, TunnelSettings, incluster

__all__ = ["Hub", "unreachable"]

log = logging.getLogger(__name__)

_REACH_CHECK = 0.5  # seconds between looks at the SSH tunnels' states
_JOINS = 32  # clusters connecting at once
_IN_CLUSTER = "in-cluster"  # the digest of the in-cluster destination's entry (no file)


class Hub:
    """``fleet run``."""

    def __init__(self, settings: HubSettings) -> None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.clusters_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.clock = RealClock()
        self.targets = Targets()
        self.board = gitconfig.ConfigBoard(targets=self.targets)
        self.metrics = Metrics()
        self.history = open_history(
            settings.history or settings.history_path, registry=self.metrics.registry
        )
        self.board.problems = self._problems  # a history database away keeps the board red
        self.targets.subscribe("history", HistoryWriter(self.history))
        self.targets.subscribe("metrics", MetricsWriter(self.metrics))
        self.targets.subscribe("log", LogWriter())
        self.notifier = Notifier((), env=os.environ, repo_of=self._repo_of, clock=self.clock)
        self.targets.subscribe("notify", self.notifier)
        self.metrics.registry.register(NotifyCollector(self.notifier))
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
        self.config_feed = gitconfig.ConfigFeed(
            source=settings.config_source or settings.config_path,
            sources=self.sources,
            desired=self.desired,
            hub_id=settings.hub_id,
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
            targets=self.targets,
            metrics=self.metrics,
        )
        self.refreshing = Refreshing(
            settings=settings,
            clock=self.clock,
            sources=self.sources,
            board=self.board,
            config_feed=self.config_feed,
            reconciler=self.reconciler,
            enqueue_app=self._enqueue_app,
        )
        self.configuring = Configuring(
            feed=self.config_feed,
            board=self.board,
            notifier=self.notifier,
            reconciler=self.reconciler,
            targets=self.targets,
            check_interval=settings.config_check_interval,
            on_changed=lambda name: self._enqueue_app(name, full=True),
        )
        self.suspensions = Suspensions.load(settings.state_dir / "suspended.json")
        self.reconciler.suspended = self.suspensions
        self.scheduler: Scheduler[Key] = Scheduler(
            self.reconciler,
            settings.scheduler,
            queue=self.queue,
            clock=self.clock,
            breakers=self.breakers,
        )
        self.operations = Operations(
            reconciler=self.reconciler,
            targets=self.targets,
            board=self.board,
            queue=self.queue,
            suspensions=self.suspensions,
            refresh=self.refreshing.refresh,
        )
        self.registry = registry.ClusterRegistry(
            settings.clusters_dir, self._cluster_changed, rescan_interval=settings.registry_rescan
        )
        self.shards: Shards[ClusterFile] | None = None  # a replica joins only what it holds
        if settings.shard is not None:
            self.shards = Shards(
                settings.shard,
                hub=settings.hub_id,
                on_join=self._owned,
                on_leave=self._leave,
                on_refresh=self.refreshing.refresh_key,
            )
        self.port = 0
        self._ready = False
        self._cells: Cells | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._connections: Connections | None = None
        self.tunnel_settings = TunnelSettings()  # SSH links of clusters behind a bastion
        self._stopping = anyio.Event()
        self._cluster_generation: dict[str, int] = {}  # bumped by each change of a cluster file
        self._joins = anyio.CapacityLimiter(_JOINS)
        self._in_cluster_clash = ""  # a clusters/in-cluster.* file while --in-cluster is on
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
                self._group = self.refreshing.group = group
                self._connections = Connections(
                    group=group,
                    limits=self.limits,
                    on_status=self._api_status,
                    tunnels=tunnels,
                    breakers=self.breakers,
                )
                self.reconciler.connections = self._connections.by_name
                self._cells = Cells(group=group, on_drift=self._drifted)
                self.reconciler.cells = self.configuring.cells = self._cells
                await group.start(self.notifier.run)
                await self.configuring.load()
                await group.start(self.scheduler.run)
                if self.shards is not None:  # the membership is known before any cluster
                    await group.start(self.shards.run)
                await group.start(self.registry.run)
                if self.settings.in_cluster:
                    await self._join_in_cluster()
                group.start_soon(self._supervise, "config-watch", self.configuring.watch)
                group.start_soon(self._supervise, "source-poller", self.refreshing.poll)
                group.start_soon(self._supervise, "cache-gc", self._collect_cache)
                group.start_soon(self._supervise, "tunnel-watch", self._watch_tunnels)
                self.port = await group.start(
                    functools.partial(
                        server.serve, self, self.settings.server, routes=self._routes()
                    )
                )
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
                with anyio.move_on_after(5):  # what the last reconciles said reaches the sinks
                    await self.notifier.flush()
                group.cancel_scope.cancel()
        finally:
            self.history.close()

    def stop(self) -> None:
        """Begin a graceful stop (SIGTERM)."""
        self._stopping.set()

    async def _supervise(self, name: str, service: Callable[[], Awaitable[None]]) -> None:
        def shown(error: str) -> None:
            if name == "config-watch":
                self.configuring.watch_failed(error)

        await supervised(name, service, clock=self.clock, on_error=shown)

    def _routes(self) -> list[web.RouteDef]:
        """The API routes beyond the server's own: the control API and the shards' view."""
        return [*control.routes(self.operations), *shard_api.routes(self.shards)]

    def _problems(self) -> list[str]:
        """The hub's own problems, for the board (``/api/status`` ``problems``)."""
        shards = self.shards.problems() if self.shards is not None else []  # unheld clusters
        return [p for p in (self.history.problem, self._in_cluster_clash, *shards) if p]

    def readiness(self) -> tuple[bool, str]:
        if not self._ready:
            return False, "starting"
        if self.board.config_error and not self.reconciler.config.apps:
            return False, f"no valid config: {self.board.config_error}"
        return True, "ready"

    def _apply_config(self, config: Config) -> None:  # as tests reach it
        self.configuring.apply(config)

    # -- clusters ---------------------------------------------------------------------------------

    async def _join_in_cluster(self) -> None:
        """``--in-cluster``: the cluster the hub runs in joins as the destination `in-cluster`,
        as a registry change would; without its environment the board says what to do."""
        name = incluster.NAME
        try:
            found = incluster.detect()
            problem = "" if found else "KUBERNETES_SERVICE_HOST is not set"
        except ConfigError as exc:
            found, problem = None, str(exc)
        if found is None:
            error = (
                f"--in-cluster: {problem}; run fleet in a Pod, or set KUBERNETES_SERVICE_HOST, "
                f"KUBERNETES_SERVICE_PORT and {incluster.DIR_ENV} (a directory with token, ca.crt)"
            )
            self.board.clusters[name] = ClusterState(name, state="error", error=error)
            log.warning("event=in_cluster_unavailable error=%s", problem)
            return
        file = incluster.cluster_file(found)
        entry = registry.Entry(file.path, digest=_IN_CLUSTER, cluster=file)
        await self._cluster_changed(registry.Change("joined", name, entry))

    async def _cluster_changed(self, change: registry.Change) -> None:
        """A cluster file came, changed or went; a failure here is that cluster's error."""
        entry = change.entry
        ours = entry is not None and entry.digest == _IN_CLUSTER
        if self.settings.in_cluster and change.name == incluster.NAME and not ours:
            self._in_cluster_clash = (  # a file of clusters/ (gone: the clash is over)
                f"{entry.path}: refused, cluster name {change.name} is the cluster fleet runs "
                "in (--in-cluster); rename the file"
                if entry is not None
                else ""
            )
            log.warning("event=cluster_name_clash cluster=%s kind=%s", change.name, change.kind)
            return
        try:
            await self._follow_cluster(change)
        except Exception as exc:
            state = self.board.clusters.setdefault(change.name, ClusterState(change.name))
            state.state, state.error = "error", f"cluster {change.name}: {describe(exc)}"
            log.exception("event=cluster_change_failed cluster=%s", change.name)

    async def _follow_cluster(self, change: registry.Change) -> None:
        assert self._connections is not None
        name = change.name
        if change.kind == "left":
            if self.shards is not None:
                self.shards.forget(name)
            cause = f"cluster {name} left the fleet (kubeconfig removed); nothing was deleted there"
            self._leave(name, cause, removed=True)
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
        if self.shards is not None and not self.shards.admit(name, entry.cluster):
            return  # joined (_owned) once this replica acquires the cluster's lease
        assert self._group is not None
        self._group.start_soon(self._join, entry.cluster, self._generation(name))

    def _owned(self, cluster: ClusterFile) -> None:
        """This replica acquired the lease of `cluster`: join it only once every repository is
        listed (the last owner may have applied a commit this replica has not seen yet)."""
        assert self._group is not None
        name, generation = cluster.ref.name, self._generation(cluster.ref.name)

        def waiting(why: str) -> None:
            self.board.clusters[name] = ClusterState(name, state="connecting", error=why)

        async def take() -> None:
            if await handover.listed_first(
                self.refreshing.repos,
                self.refreshing.refresh,
                clock=self.clock,
                wanted=lambda: self._cluster_generation.get(name) == generation,
                waiting=waiting,
            ):
                await self._join(cluster, generation)

        self._group.start_soon(take)

    def _leave(self, name: str, cause: str, *, removed: bool = False) -> None:
        """Stop cluster `name`'s client, cell and work; nothing is deleted there. A removed
        cluster that an app names stays Unknown; otherwise its targets are dropped."""
        assert self._connections is not None
        self._generation(name)
        self._connections.close(name)
        self.breakers.drop(name)
        self.board.forget_cluster(name)
        if self._cells is not None:
            self._cells.close(name)
            self._cells.unwatch_where(lambda key: key[0] == name)
        for key in self.targets.of_cluster(name):
            app = self.reconciler.config.app(key[1])
            if removed and app is not None and name in app.destination.clusters.names:
                self.reconciler.cluster_unreachable(name, cause)
            else:
                self.targets.forget(key, message=cause)

    def _generation(self, name: str) -> int:
        """A new generation of cluster `name`: a join that finds a later one gives way."""
        self._cluster_generation[name] = self._cluster_generation.get(name, 0) + 1
        return self._cluster_generation[name]

    async def _join(self, cluster: ClusterFile, generation: int) -> None:
        """Connect a cluster that joined or changed, then enqueue its targets.

        Joins run concurrently, at most ``_JOINS`` at a time, so a hub with a thousand entries
        listens at once and connects them in the background; a join overtaken by a later change
        of the same cluster (or its removal) does nothing.
        """
        assert self._connections is not None
        name = cluster.ref.name
        self.board.clusters.setdefault(name, ClusterState(name, labels=dict(cluster.ref.labels)))
        async with self._joins:
            if self._cluster_generation.get(name) != generation:
                return
            try:
                connection = await self._connections.open(cluster)
            except Exception as exc:
                state = self.board.clusters.setdefault(name, ClusterState(name))
                state.state, state.error = "error", f"cluster {name}: {describe(exc)}"
                log.exception("event=cluster_join_failed cluster=%s", name)
                return
        if self._cluster_generation.get(name) != generation:
            return
        if self.shards is not None and connection.client is not None:
            self.shards.fenced(name, connection.client)  # no write once its lease is not fresh
        state = ClusterState(name, labels=dict(cluster.ref.labels))
        state.state, state.error = (
            ("error", connection.error)
            if connection.error
            else ("connecting" if connection.via else "ready", "")
        )
        self.board.clusters[name] = state
        if self._cells is not None and connection.cluster is not None:
            self._cells.open(name, connection.cluster, identity=configured.identity(cluster))
        for app in self.reconciler.config.apps:
            if self.reconciler.selects(app, name):
                self.reconciler.force_full.add((name, app.name))
                self.queue.add((name, app.name))

    def _breaker_changed(self, status: BreakerStatus) -> None:
        state = self.board.clusters.get(status.cluster)
        if state is None:
            return
        if status.state is BreakerState.OPEN:
            state.state, state.error = "parked", f"unreachable: {status.last_error}"
            cause = f"cluster {status.cluster} is unreachable: {status.last_error}"
            self.reconciler.cluster_unreachable(status.cluster, cause)
        elif status.state is BreakerState.CLOSED and state.state == "parked":
            state.state, state.error = "ready", ""
            for key in self.targets.of_cluster(status.cluster):
                self.queue.add(key)

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

    def _enqueue_app(self, name: str, *, full: bool = False) -> None:
        app = self.reconciler.config.app(name)
        if app is not None:
            for cluster in self.reconciler.targets_of(app):
                if full:
                    self.reconciler.force_full.add((cluster, name))
                self.queue.add((cluster, name))

    async def _collect_cache(self) -> None:
        """The render cache is bounded by age and size; everything in it can be rebuilt."""
        while True:
            await anyio.sleep(self.settings.cache_gc_interval)
            removed = await self.desired.cache.gc()
            log.info("event=cache_gc removed=%d", removed)

    async def on_push(self, push: webhooks.Push) -> PushOutcome:
        """A verified webhook (the server's intake): list the repositories it names at once
        (the other replicas too), answer what happened (:meth:`Refreshing.refresh_now`)."""
        matched = self.refreshing.matched(push)
        if self.shards is not None:  # the owners of the other clusters refresh it too
            self.shards.announce(matched)
        return await self.refreshing.refresh_now(matched)

    async def _refresh(self, url: str) -> RepoRefresh:  # as tests reach it
        return await self.refreshing.refresh(url)

    def _repo_of(self, app: str) -> str:
        found = self.reconciler.config.app(app)
        if found is None:
            raise KeyError(app)
        return found.source.repo_url

    # -- drift ------------------------------------------------------------------------------------

    def _drifted(self, key: Key, objects: int) -> None:
        """A cell saw someone else change `objects` of `key`: mark it; with selfHeal, heal it."""
        self.reconciler.mark_drift(key, objects=objects)
        app = self.reconciler.config.app(key[1])
        if app is not None and app.sync_policy.self_heal:
            self.queue.add(key)
