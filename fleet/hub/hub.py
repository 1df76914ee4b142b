"""The hub: one process, one anyio task group, every app on every cluster kept in sync.

This module is the wiring: it builds the parts, starts them in one task group in order (each
service with a ready handshake), reports ready, then drains and stops. What each part does lives
in its own module:
- :mod:`fleet.hub.configuring`: ``fleet.yaml`` loaded, shown and applied, again when it changes
  (a bad file keeps the last good config running and shows its error);
- :mod:`fleet.hub.membership`: clusters joining, following and leaving ``clusters/`` (with
  generations, ``--in-cluster``, shard leases), breakers parking them, tunnels shown;
- :mod:`fleet.hub.refreshing`: one ``ls-remote`` per repository per interval for the fleet, a
  webhook push listing its repositories at once (:meth:`Hub.on_push`), backoff of a failing one;
- :mod:`fleet.hub.reconciling` run by the **scheduler** (a worker pool over the work queue of
  (cluster, app) keys, fair per cluster, a circuit breaker per cluster);
- :mod:`fleet.hub.cells`, one per connected cluster: one shared watch per kind feeding a live
  cache; a change by someone else to a target's objects marks it drifted (:meth:`Hub._drifted`);
- :mod:`fleet.hub.server`: webhooks, health, metrics, JSON status, the page, the control API;
- :mod:`fleet.hub.reporting`: one record per (cluster, app), written only by the reconciler's
  summary step; the board, history, metrics, log and notifier read it.

Start order: notifier, the server (the port is reported once it listens: webhooks and the API are
answered from then on, a webhook's match and the control API waiting for the config), the config,
scheduler, shards (membership known before any cluster), the cluster registry, the in-cluster
destination, then the watchers; ready (``/readyz``) once all of them run. :meth:`Hub.stop`
(SIGTERM) stops taking work, lets in-flight reconciles finish for at most ``drain_timeout``,
flushes the notifier, then cancels the rest. A SIGKILL loses nothing a restart does not redo: the
inventory lives in the clusters, and every key is enqueued again on start. Every long-lived service
runs supervised (:func:`~fleet.runtime.supervised`): an exception becomes the error of what it
concerns, shown and retried, never the end of the hub.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
from aiohttp import web

from fleet.activity import Activity
from fleet.cache import CacheSettings, ManifestCache
from fleet.hub import control, gitconfig, reporting, server, webhooks
from fleet.hub.cells import Cells
from fleet.hub.configuring import Configuring
from fleet.hub.connections import Connections
from fleet.hub.control import Suspensions
from fleet.hub.membership import Membership
from fleet.hub.operating import Operations
from fleet.hub.pushes import PushOutcome
from fleet.hub.reconciling import Key, Reconciler, unreachable
from fleet.hub.refreshing import PUSH_WAIT, Refreshing
from fleet.hub.settings import HubSettings
from fleet.hub.stats import StatsCollector
from fleet.reconcile.desired import DesiredState
from fleet.reconcile.writebehind import WriteBehind
from fleet.render import Renderer, RenderSettings
from fleet.runtime import (
    Limits,
    RealClock,
    Scheduler,
    WorkQueue,
    default_limiter,
    registry,
    supervised,
)
from fleet.shard import api as shard_api
from fleet.sources import Sources, SourceSettings
from fleet.transport import Tunnels, TunnelSettings

__all__ = ["Hub", "unreachable"]

log = logging.getLogger(__name__)
READING_CONFIG = "reading the config"  # /readyz until the first load is over
STARTING = "starting"  # /readyz after it, until every service runs
WAVE_SETTLE = 1.0  # seconds without a plan, render or sync that end a wave (fleet.activity)


class Hub:
    """``fleet run``."""

    def __init__(self, settings: HubSettings) -> None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.clusters_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.clock = RealClock()
        report = reporting.open_reporting(settings, clock=self.clock, repo_of=self._repo_of)
        self.targets, self.board, self.metrics = report.targets, report.board, report.metrics
        self.history, self.notifier = report.history, report.notifier
        self.board.problems = self._problems  # a history database away keeps the board red
        # listings come from the poller and webhooks: a reconcile reuses the last one and never
        # lists by itself, so a repository costs one ls-remote per poll interval, fleet-wide
        self.sources = Sources(
            SourceSettings(
                cache_dir=settings.cache_dir,
                interval=2 * settings.poll_interval,
                credentials_file=settings.credentials_file,
            )
        )
        # a commit's wave of plans, renders and syncs: what can wait (held inventory records,
        # the render cache's disk writes, history rows) waits for it to end
        self.activity = Activity()
        self.history.defer_while(lambda: self.activity.idle_for() < WAVE_SETTLE)
        self.desired = DesiredState(
            sources=self.sources,
            renderer=Renderer(RenderSettings(helm=settings.helm)),
            cache=ManifestCache(
                CacheSettings(root=settings.cache_dir / "render"),
                activity=self.activity,
                settle=WAVE_SETTLE,
            ),
            activity=self.activity,
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
        self.reconciler = Reconciler(
            settings=settings,
            desired=self.desired,
            targets=self.targets,
            metrics=self.metrics,
            behind=WriteBehind(activity=self.activity, settle=WAVE_SETTLE),
        )
        self.suspensions = Suspensions.load(settings.state_dir / "suspended.json")
        self.reconciler.suspended = self.suspensions
        self.refreshing = Refreshing(
            settings=settings,
            clock=self.clock,
            sources=self.sources,
            board=self.board,
            config_feed=self.config_feed,
            reconciler=self.reconciler,
            enqueue_app=self._enqueue_app,
        )
        self.membership = Membership(
            settings=settings,
            clock=self.clock,
            board=self.board,
            targets=self.targets,
            reconciler=self.reconciler,
            queue=self.queue,
            refreshing=self.refreshing,
        )
        self.breakers, self.shards = self.membership.breakers, self.membership.shards
        self.scheduler: Scheduler[Key] = Scheduler(
            self.reconciler,
            settings.scheduler,
            queue=self.queue,
            clock=self.clock,
            breakers=self.breakers,
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
        self.operations = Operations(
            reconciler=self.reconciler,
            targets=self.targets,
            board=self.board,
            queue=self.queue,
            suspensions=self.suspensions,
            refresh=self.refreshing.refresh,
            config_read=self.configuring.read.is_set,
        )
        self.registry = registry.ClusterRegistry(
            settings.clusters_dir, self.membership.changed, rescan_interval=settings.registry_rescan
        )
        self.port = 0
        self._ready = False
        self.tunnel_settings = TunnelSettings()  # SSH links of clusters behind a bastion
        self._stopping = anyio.Event()
        self.metrics.registry.register(StatsCollector(self))

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(
        self,
        *,
        on_listening: Callable[[int], None] | None = None,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until :meth:`stop`; reports the HTTP port once every service is ready.

        The HTTP server starts before the first scan of the cluster files, and `on_listening`
        hears its port then: webhooks and the API are answered while 10,000 kubeconfigs are
        still being read (readiness, ``/readyz``, waits for the scan)."""
        try:
            async with (
                Tunnels(self.tunnel_settings) as tunnels,
                anyio.create_task_group() as group,
            ):
                connections = Connections(
                    group=group,
                    limits=self.limits,
                    on_status=self._api_status,
                    tunnels=tunnels,
                    breakers=self.breakers,
                )
                cells = Cells(
                    group=group,
                    on_drift=self._drifted,
                    on_in_sync=self.reconciler.mark_in_sync,  # a drift put back by hand
                )
                self.reconciler.connections = connections.by_name
                self.reconciler.cells = self.configuring.cells = cells
                self.refreshing.group = group
                self.membership.bind(group=group, connections=connections, cells=cells)
                await group.start(self.notifier.run)
                self.port = await group.start(
                    functools.partial(
                        server.serve, self, self.settings.server, routes=self._routes()
                    )
                )
                if on_listening is not None:
                    on_listening(self.port)
                await self.configuring.load()
                await group.start(self.scheduler.run)
                if self.shards is not None:  # the membership is known before any cluster
                    await group.start(self.shards.run)
                await group.start(self.registry.run)
                if self.settings.in_cluster:
                    await self.membership.join_in_cluster()
                self._supervise(
                    group,
                    "config-watch",
                    self.configuring.watch,
                    on_error=self.configuring.watch_failed,
                )
                self._supervise(group, "source-poller", self.refreshing.poll)
                self._supervise(group, "cache-gc", self._collect_cache)
                self._supervise(group, "inventory-records", self.reconciler.behind.run)
                self._supervise(group, "render-cache-writes", self.desired.cache.run)
                self._supervise(group, "tunnel-watch", self.membership.watch_tunnels)
                self._ready = True
                log.info(
                    "event=hub_ready port=%d clusters=%d apps=%d",
                    self.port,
                    len(connections.by_name),
                    len(self.reconciler.config.apps),
                )
                task_status.started(self.port)
                await self._stopping.wait()
                self._ready = False
                self.scheduler.stop()
                with anyio.move_on_after(self.settings.drain_timeout):
                    await self.queue.drain()
                with anyio.move_on_after(10):  # the inventory records held (writebehind)
                    await self.reconciler.behind.flush()
                with anyio.move_on_after(10):  # renders held in memory (fleet.cache.store)
                    await self.desired.cache.flush()
                with anyio.move_on_after(5):  # what the last reconciles said reaches the sinks
                    await self.notifier.flush()
                group.cancel_scope.cancel()
        finally:
            self.history.close()

    def stop(self) -> None:
        """Begin a graceful stop (SIGTERM)."""
        self._stopping.set()

    def _supervise(
        self,
        group: anyio.abc.TaskGroup,
        name: str,
        service: Callable[[], Awaitable[None]],
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        group.start_soon(
            functools.partial(supervised, name, service, clock=self.clock, on_error=on_error)
        )

    def _routes(self) -> list[web.RouteDef]:
        """The API routes beyond the server's own: the control API and the shards' view."""
        return [*control.routes(self.operations), *shard_api.routes(self.shards)]

    def _problems(self) -> list[str]:
        """The hub's own problems, for the board (``/api/status`` ``problems``)."""
        shards = self.shards.problems() if self.shards is not None else []  # unheld clusters
        clash = self.membership.in_cluster_clash
        return [p for p in (self.history.problem, clash, *shards) if p]

    def readiness(self) -> tuple[bool, str]:
        if not self.configuring.read.is_set():
            return False, READING_CONFIG
        if not self._ready:
            return False, STARTING
        if self.board.config_error and not self.reconciler.config.apps:
            return False, f"no valid config: {self.board.config_error}"
        return True, "ready"

    # -- what the parts ask of each other -------------------------------------------------------

    async def on_push(self, push: webhooks.Push) -> PushOutcome:
        """A verified webhook (the server's intake): list the repositories it names at once
        (the other replicas too), answer what happened (:meth:`Refreshing.refresh_now`)."""
        with anyio.move_on_after(PUSH_WAIT):  # the hub listens before its config is read
            await self.configuring.read.wait()
        if not self.configuring.read.is_set():
            return PushOutcome(starting=True)
        matched = self.refreshing.matched(push)
        if self.shards is not None:  # the owners of the other clusters refresh it too
            self.shards.announce(matched)
        return await self.refreshing.refresh_now(matched, pushed=push.pushed)

    def _enqueue_app(self, name: str, *, full: bool = False) -> None:
        """Every target of app `name` into the queue (`full`: read everything, not the cache)."""
        app = self.reconciler.config.app(name)
        for cluster in self.reconciler.targets_of(app) if app is not None else ():
            if full:
                self.reconciler.force_full.add((cluster, name))
            self.queue.add((cluster, name))

    def _drifted(self, key: Key, objects: int) -> None:
        """A cell saw someone else change `objects` of `key`: mark it; with selfHeal, heal it."""
        self.reconciler.mark_drift(key, objects=objects)
        app = self.reconciler.config.app(key[1])
        if app is not None and app.sync_policy.self_heal:
            self.queue.add(key)

    def _repo_of(self, app: str) -> str:
        """The repository URL app `app` reads (the notifier's commit statuses)."""
        found = self.reconciler.config.app(app)
        if found is None:
            raise KeyError(app)
        return found.source.repo_url

    def _api_status(self, cluster: str, status: int) -> None:
        self.metrics.api_requests.labels(cluster=cluster, code=str(status)).inc()

    async def _collect_cache(self) -> None:
        """The render cache is bounded by age and size; everything in it can be rebuilt."""
        while True:
            await anyio.sleep(self.settings.cache_gc_interval)
            removed = await self.desired.cache.gc()
            log.info("event=cache_gc removed=%d", removed)
