"""The clusters of the fleet: joining, following, leaving, and how reachable each one is.

A cluster joins when its kubeconfig lands in ``clusters/`` (the registry's change, see
:meth:`Membership.changed`), when ``--in-cluster`` names the cluster the hub runs in, or, on a
sharded replica, when this replica acquires the cluster's lease (:meth:`Membership.owned`, which
first lists every repository: the last owner may have applied a commit not seen here). A join
connects (at most ``_JOINS`` at a time, so a thousand entries connect in the background), opens
the cluster's cell and enqueues a full look at each of its targets.

Every change of a cluster bumps its **generation**; a join that finds a later generation once it
has connected gives way, so a join overtaken by a change or a removal does nothing. A cluster
that leaves has its client, breaker, cell and watches stopped; nothing is deleted in it. Its
targets are forgotten, except that a removed cluster an app still names stays Unknown (the
reconciler's summary says so). A failure while following a change is that cluster's error on
the board, never the hub's.

Membership holds the breakers (one per cluster) and, on a sharded replica, the shards (the
clusters' leases). Reach: a circuit breaker that opens parks the cluster (its targets Unknown);
one that closes enqueues them again. The tunnel watch (:meth:`Membership.watch_tunnels`) shows
each SSH tunnel on the board every ``_REACH_CHECK`` seconds and enqueues a cluster's apps when
its tunnel is back. The parts that exist only while the hub runs (its task group, connections,
cells) are bound by :meth:`Membership.bind`.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc

from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError, describe
from fleet.hub import configured
from fleet.hub.cells import Cells
from fleet.hub.connections import Connections, show_reach
from fleet.hub.reconciling import Key, Reconciler, unreachable
from fleet.hub.refreshing import Refreshing
from fleet.hub.settings import HubSettings
from fleet.report import Board, ClusterState, Targets
from fleet.runtime import Breakers, BreakerState, BreakerStatus, Clock, WorkQueue, registry
from fleet.shard import Shards, handover
from fleet.transport import incluster

__all__ = ["Membership"]

log = logging.getLogger(__name__)

_REACH_CHECK = 0.5  # seconds between looks at the SSH tunnels' states
_JOINS = 32  # clusters connecting at once
_IN_CLUSTER = "in-cluster"  # the digest of the in-cluster destination's entry (no file)


class Membership:
    """Which clusters are in the fleet, connected, and reachable."""

    def __init__(
        self,
        *,
        settings: HubSettings,
        clock: Clock,
        board: Board,
        targets: Targets,
        reconciler: Reconciler,
        queue: WorkQueue[Key],
        refreshing: Refreshing,
    ) -> None:
        self._in_cluster = settings.in_cluster
        self._clock = clock
        self._board = board
        self._targets = targets
        self._reconciler = reconciler
        self._queue = queue
        self._refreshing = refreshing
        self.breakers = Breakers(
            settings.breaker, clock=clock, trips=unreachable, on_change=self.breaker_changed
        )
        self.shards: Shards[ClusterFile] | None = None  # a replica joins only what it holds
        if settings.shard is not None:
            self.shards = Shards(
                settings.shard,
                hub=settings.hub_id,
                on_join=self.owned,
                on_leave=self.leave,
                on_refresh=refreshing.refresh_key,
            )
        self._generations: dict[str, int] = {}  # bumped by each change of a cluster file
        self._joins = anyio.CapacityLimiter(_JOINS)
        self.in_cluster_clash = ""  # a clusters/in-cluster.* file while --in-cluster is on
        self.group: anyio.abc.TaskGroup | None = None
        self.connections: Connections | None = None
        self.cells: Cells | None = None

    def bind(self, *, group: anyio.abc.TaskGroup, connections: Connections, cells: Cells) -> None:
        """The hub runs: joins run in its task group, on its connections and cells."""
        self.group, self.connections, self.cells = group, connections, cells

    # -- joining and leaving ----------------------------------------------------------------------

    async def join_in_cluster(self) -> None:
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
            self._board.clusters[name] = ClusterState(name, state="error", error=error)
            log.warning("event=in_cluster_unavailable error=%s", problem)
            return
        file = incluster.cluster_file(found)
        entry = registry.Entry(file.path, digest=_IN_CLUSTER, cluster=file)
        await self.changed(registry.Change("joined", name, entry))

    async def changed(self, change: registry.Change) -> None:
        """A cluster file came, changed or went; a failure here is that cluster's error."""
        entry = change.entry
        ours = entry is not None and entry.digest == _IN_CLUSTER
        if self._in_cluster and change.name == incluster.NAME and not ours:
            self.in_cluster_clash = (  # a file of clusters/ (gone: the clash is over)
                f"{entry.path}: refused, cluster name {change.name} is the cluster fleet runs "
                "in (--in-cluster); rename the file"
                if entry is not None
                else ""
            )
            log.warning("event=cluster_name_clash cluster=%s kind=%s", change.name, change.kind)
            return
        try:
            self._follow(change)
        except Exception as exc:
            state = self._board.clusters.setdefault(change.name, ClusterState(change.name))
            state.state, state.error = "error", f"cluster {change.name}: {describe(exc)}"
            log.exception("event=cluster_change_failed cluster=%s", change.name)

    def _follow(self, change: registry.Change) -> None:
        assert self.connections is not None and self.group is not None
        name = change.name
        if change.kind == "left":
            if self.shards is not None:
                self.shards.forget(name)
            cause = f"cluster {name} left the fleet (kubeconfig removed); nothing was deleted there"
            self.leave(name, cause, removed=True)
            return
        entry = change.entry
        assert entry is not None
        if entry.error or entry.cluster is None:
            state = self._board.clusters.setdefault(name, ClusterState(name))
            state.error = entry.error or "unreadable"
            if self.connections.get(name) is None:
                state.state = "error"
            else:
                state.error += " (the last good kubeconfig stays in use)"
            return
        if self.shards is not None and not self.shards.admit(name, entry.cluster):
            return  # joined (owned) once this replica acquires the cluster's lease
        self.group.start_soon(self._join, entry.cluster, self._generation(name))

    def owned(self, cluster: ClusterFile) -> None:
        """This replica acquired the lease of `cluster`: join it only once every repository is
        listed (the last owner may have applied a commit this replica has not seen yet)."""
        assert self.group is not None
        name, generation = cluster.ref.name, self._generation(cluster.ref.name)

        def waiting(why: str) -> None:
            self._board.clusters[name] = ClusterState(name, state="connecting", error=why)

        async def take() -> None:
            if await handover.listed_first(
                self._refreshing.repos,
                self._refreshing.refresh,
                clock=self._clock,
                wanted=lambda: self._generations.get(name) == generation,
                waiting=waiting,
            ):
                await self._join(cluster, generation)

        self.group.start_soon(take)

    def leave(self, name: str, cause: str, *, removed: bool = False) -> None:
        """Stop cluster `name`'s client, cell and work; nothing is deleted there. A removed
        cluster that an app names stays Unknown; otherwise its targets are dropped."""
        assert self.connections is not None
        self._generation(name)
        self.connections.close(name)
        self.breakers.drop(name)
        self._board.forget_cluster(name)
        if self.cells is not None:
            self.cells.close(name)
            self.cells.unwatch_where(lambda key: key[0] == name)
        for key in self._targets.of_cluster(name):
            app = self._reconciler.config.app(key[1])
            if removed and app is not None and name in app.destination.clusters.names:
                self._reconciler.cluster_unreachable(name, cause)
            else:
                self._targets.forget(key, message=cause)

    def _generation(self, name: str) -> int:
        """A new generation of cluster `name`: a join that finds a later one gives way."""
        self._generations[name] = self._generations.get(name, 0) + 1
        return self._generations[name]

    async def _join(self, cluster: ClusterFile, generation: int) -> None:
        """Connect a cluster that joined or changed, then enqueue its targets (a join overtaken
        by a later change of the same cluster, or its removal, does nothing)."""
        assert self.connections is not None
        name = cluster.ref.name
        self._board.clusters.setdefault(name, ClusterState(name, labels=dict(cluster.ref.labels)))
        async with self._joins:
            if self._generations.get(name) != generation:
                return
            try:
                connection = await self.connections.open(cluster)
            except Exception as exc:
                state = self._board.clusters.setdefault(name, ClusterState(name))
                state.state, state.error = "error", f"cluster {name}: {describe(exc)}"
                log.exception("event=cluster_join_failed cluster=%s", name)
                return
        if self._generations.get(name) != generation:
            return
        if self.shards is not None and connection.client is not None:
            self.shards.fenced(name, connection.client)  # no write once its lease is not fresh
        state = ClusterState(name, labels=dict(cluster.ref.labels))
        state.state, state.error = (
            ("error", connection.error)
            if connection.error
            else ("connecting" if connection.via else "ready", "")
        )
        self._board.clusters[name] = state
        if self.cells is not None and connection.cluster is not None:
            self.cells.open(name, connection.cluster, identity=configured.identity(cluster))
        self._enqueue_cluster(name, full=True)

    def _enqueue_cluster(self, name: str, *, full: bool = False) -> None:
        for app in self._reconciler.config.apps_that_may_select(name):
            if self._reconciler.selects(app, name):
                if full:
                    self._reconciler.force_full.add((name, app.name))
                self._queue.add((name, app.name))

    # -- reach ------------------------------------------------------------------------------------

    def breaker_changed(self, status: BreakerStatus) -> None:
        """A cluster's breaker opened (park it: its targets Unknown) or closed (look again)."""
        state = self._board.clusters.get(status.cluster)
        if state is None:
            return
        if status.state is BreakerState.OPEN:
            state.state, state.error = "parked", f"unreachable: {status.last_error}"
            cause = f"cluster {status.cluster} is unreachable: {status.last_error}"
            self._reconciler.cluster_unreachable(status.cluster, cause)
        elif status.state is BreakerState.CLOSED and state.state == "parked":
            state.state, state.error = "ready", ""
            for key in self._targets.of_cluster(status.cluster):
                self._queue.add(key)

    async def watch_tunnels(self) -> None:
        """Show each tunnel on the board; a tunnel back enqueues its cluster's apps at once."""
        assert self.connections is not None
        while True:
            await anyio.sleep(_REACH_CHECK)
            for reach in self.connections.reach():
                state = self._board.clusters.get(reach.cluster)
                if state is not None:
                    breaker = self.breakers.for_cluster(reach.cluster)
                    show_reach(state, reach, parked=breaker.state is BreakerState.OPEN)
                if reach.recovered:  # the tunnel is back: no need to wait for the next probe
                    self.breakers.for_cluster(reach.cluster).success()
                    self._enqueue_cluster(reach.cluster)
