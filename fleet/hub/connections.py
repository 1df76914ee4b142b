"""Connections to the clusters of ``clusters/``: one long-lived client each, swapped on change.

Each cluster's connection lives in a task of its own (the client is an async context manager),
inside a cancel scope kept here: a changed kubeconfig cancels the old task and starts a new one; a
removed file cancels it; a file that *breaks* keeps the running connection (the last good one) and
only shows the error. Every client is built with the cluster's rate-limit gate and a status
observer, so every API request of the apply engine is admitted by the hub's limits and counted.

A cluster whose kubeconfig names an SSH route (see :mod:`fleet.transport.routes`) is reached
through the hub's :class:`~fleet.transport.Tunnels`: its client dials the tunnel's stable local
endpoint (the kubeconfig rewritten in memory), so it survives SSH drops; the tunnel is released
when the cluster leaves. A bad route is an error for that cluster alone. :meth:`Connections.reach`
reports each tunnel's state; while a route is *refused* (host key, user key) the client is
withheld, so its keys stall on the refusal (a stalled error: only a fixed file helps) instead of
tripping the circuit breaker as an outage would. A dead link is an outage: requests through it
fail at once with ``ApiError(0)``, which the breaker counts.

**Liveness.** A hung apiserver (process stopped, its port still accepting TCP) answers nothing
and refuses nothing. So each connection task also runs a probe, supervised within it: whenever
the cluster has not answered anything for ``ProbeSettings.interval`` seconds, one ``GET /readyz``
with a short timeout (:meth:`fleet.apply.Cluster.probe`, through the cluster's rate limit). After
``failures`` probes in a row without an answer the cluster is *silent*: its client is fenced (the
requests in flight are abandoned at once and new ones fail fast, each an outage), its circuit
breaker is tripped and held open (``CircuitBreaker.trip``), and :meth:`Connections.reach`
reports it ``down`` (the board shows it parked: "unreachable: <cause>", since when). The probe
goes on every interval; the first answer lifts the fence, releases the breaker, and
:meth:`Connections.reach` reports it recovered once, so the hub enqueues its apps at once. A
failing probe is that cluster's state, never an exception out of the hub's task group. A
tunnelled cluster is probed only while its tunnel is up (the tunnel reports it otherwise).

Entries that reach one API server as one user by one route (aliases, tunnels, the entries of a
shared app: :func:`fleet.hub.configured.identity`) share what is heard from it: an answer to any of
them is liveness for all, so a healthy server is probed about once an interval however many
entries reach it (at 1,000 entries on 4 servers, probes per entry had taken most of the event
loop). The entries' probe rounds fall due together (each waits until the shared last answer is
an interval old), so a probe that falls due is one per identity (:class:`~fleet.cache.SingleFlight`
keyed by identity): the entries whose round comes while it is in flight take its answer, or its
silence, as their own. When the server stops answering, no entry hears anything, and each counts
the shared probes' misses itself and is found silent (its own client fenced, its own breaker
tripped) as before. A probe without an answer in time is no miss when the entry's client, or
any entry of its identity, heard another answer meanwhile: the probe's timeout also runs while
the hub's own loop is busy (1,000 targets syncing at once on a loaded machine), and a server that
answers is not hung; found silent for that, every entry had been fenced in the middle of a
commit and its targets shown unreachable.

**HTTP sessions.** The clients of all connections come from one pool
(:class:`fleet.apply.sessions.Sessions`): entries with the same TLS identity (server, CA, client
certificate, proxy: coarser than the identity above, which also holds the user's token) share
one connection pool and SSL context. Fencing still concerns one entry: it cancels that entry's
requests, whose connections are dropped, not the pool's others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config.config_exception import ConfigException

from fleet import apply, transport
from fleet.apply import sessions as api_sessions
from fleet.cache import SingleFlight
from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError, FleetError
from fleet.hub import configured
from fleet.report import ClusterState
from fleet.runtime import Breakers, Limits

__all__ = ["Connection", "Connections", "Liveness", "ProbeSettings", "Reach", "show_reach"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeSettings:
    """How each connected cluster's liveness is checked (the probe's own timeout is the client's
    ``Timeouts.probe``, 3 s)."""

    interval: float = 3.0  # probe when nothing was answered for this long, and this often
    failures: int = 2  # probes in a row without an answer before the cluster is silent
    path: str = "/readyz"


@dataclass
class Liveness:
    """What the probe knows of one cluster."""

    state: str = "unknown"  # unknown (not probed yet) | answering | silent
    since: float = field(default_factory=time.time)  # wall clock of the last change of state
    cause: str = ""  # why silent: the last probe's failure
    misses: int = 0  # probes in a row without an answer
    recovered: bool = False  # answering again after silent, not yet reported by reach()


@dataclass
class Connection:
    """One cluster: the file it came from and, once connected, its client."""

    file: ClusterFile
    cluster: apply.Cluster | None = None  # None while not connected, or its route is refused
    error: str = ""
    via: str | None = None  # the SSH route, when tunnelled
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    client: apply.Cluster | None = field(default=None, repr=False)  # held even while refused
    link: str = "connecting"  # the tunnel state last seen (tunnelled clusters only)
    down: bool = False  # the tunnel has been down or refused since it was last up
    liveness: Liveness = field(default_factory=Liveness)
    identity: str = ""  # the API server, user and route it reaches (configured.identity)

    @property
    def name(self) -> str:
        return self.file.ref.name


@dataclass(frozen=True)
class Reach:
    """A tunnelled cluster's link, as the status board shows it."""

    cluster: str
    state: str  # connecting | up | down | refused
    error: str
    recovered: bool  # up again after being down or refused: its keys want a run
    since: float = 0.0  # wall clock since when it is in this state (0: unknown)


class Connections:
    """The live clients, by cluster name."""

    def __init__(
        self,
        *,
        group: anyio.abc.TaskGroup,
        limits: Limits,
        on_status: Callable[[str, int], None],
        tunnels: transport.Tunnels | None = None,
        breakers: Breakers | None = None,
        probe: ProbeSettings | None = None,
        sessions: api_sessions.Sessions | None = None,
    ) -> None:
        self._group = group
        self._limits = limits
        self._on_status = on_status
        self._tunnels = tunnels
        self._breakers = breakers
        self._probe = probe or ProbeSettings()
        self.by_name: dict[str, Connection] = {}
        self._heard: dict[str, float] = {}  # identity -> when any of its entries last answered
        self._probes: SingleFlight[str, tuple[str, str]] = SingleFlight()  # one per identity
        self.sessions = sessions if sessions is not None else api_sessions.Sessions()

    def get(self, name: str) -> Connection | None:
        return self.by_name.get(name)

    async def open(self, file: ClusterFile) -> Connection:
        """Connect to `file`'s cluster, replacing any connection of the same name.

        A tunnel is kept across the replacement (same route: same local port, same SSH link).
        """
        self._cancel(file.ref.name)
        connection = Connection(file=file, identity=configured.identity(file))
        self.by_name[file.ref.name] = connection
        await self._group.start(self._hold, connection)
        return connection

    def close(self, name: str) -> None:
        """The cluster left: stop its client and release its tunnel."""
        self._cancel(name)
        if self._tunnels is not None:
            self._group.start_soon(self._tunnels.release, name)

    def close_all(self) -> None:
        for name in list(self.by_name):
            self.close(name)

    def liveness(self) -> dict[str, Liveness]:
        """Each connected cluster's liveness, by name (the board's "unreachable since T: cause")."""
        return {name: c.liveness for name, c in self.by_name.items() if c.client is not None}

    def reach(self) -> list[Reach]:
        """Each connected tunnelled cluster's link now, and each cluster the liveness probe finds
        silent or found answering again; withholds or restores refused clients."""
        found: list[Reach] = []
        for connection in self.by_name.values():
            if connection.client is None:
                continue
            now = self._link(connection)
            link = _update(connection, now) if now is not None else None
            reach = _with_liveness(connection, link)
            if reach is not None:
                found.append(reach)
        return found

    def _link(self, connection: Connection) -> transport.TunnelState | None:
        """The tunnel state of a tunnelled connection (asked of that one alone: at 1,000 direct
        entries, every state every half second was a measurable share of the idle hub)."""
        if connection.via is None or self._tunnels is None:
            return None
        try:
            return self._tunnels.state(connection.name)
        except KeyError:  # released meanwhile
            return None

    def _cancel(self, name: str) -> None:
        connection = self.by_name.pop(name, None)
        if connection is not None:
            connection.scope.cancel()
            self._limits.drop(name)

    async def _source(self, connection: Connection) -> Path | dict[str, Any] | Configuration:
        """The kubeconfig to connect with: the file, or its copy rewritten to dial the tunnel;
        for the cluster the hub runs in, its client configuration (the token re-read as it
        rotates; a missing token file is a ConfigError)."""
        found = transport.incluster.configuration_for(connection.file)
        if found is not None:
            return found
        if self._tunnels is None:
            return connection.file.path
        endpoint = await self._tunnels.endpoint(connection.file)  # ConfigError: a bad route
        if endpoint.via is None:
            return connection.file.path
        connection.via = endpoint.via
        return transport.tunneled_document(connection.file, endpoint)

    async def _hold(
        self, connection: Connection, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        name = connection.name
        with connection.scope:
            try:
                source = await self._source(connection)
            except ConfigError as exc:
                connection.error = f"cluster {name}: {exc}"  # names the file and the field
                log.warning("event=cluster_route_invalid cluster=%s error=%s", name, exc)
                task_status.started()
                return
            try:
                async with apply.connect(
                    source,
                    name=name,
                    base_dir=connection.file.path.parent,
                    gate=self._limits.for_cluster(name),
                    on_status=lambda status: self._on_status(name, status),
                    sessions=self.sessions,
                ) as cluster:
                    connection.cluster = connection.client = cluster
                    log.info(
                        "event=cluster_connected cluster=%s server=%s via=%s",
                        name,
                        connection.file.server,
                        connection.via or "direct",
                    )
                    async with anyio.create_task_group() as group:
                        group.start_soon(self._watch_liveness, connection, cluster)
                        task_status.started()
                        await anyio.sleep_forever()
            except (ConfigException, FleetError, OSError, ValueError, KeyError, TypeError) as exc:
                # kubernetes-asyncio's loader raises plain errors for bad credentials data
                connection.error = f"{connection.file.path}: cannot load credentials: {exc}"
                log.warning("event=cluster_connect_failed cluster=%s error=%s", name, exc)
                task_status.started()
            finally:
                connection.cluster = connection.client = None
                breaker = self._breakers.get(name) if self._breakers is not None else None
                if breaker is not None and connection.liveness.state == "silent":
                    breaker.unhold()  # no probe is left to release it

    async def _watch_liveness(self, connection: Connection, cluster: apply.Cluster) -> None:
        """The probe loop of one connection (see the module docstring); runs until cancelled.

        Supervised: whatever goes wrong in one round is logged and the next round follows, so
        nothing escapes into the connection's task group (and so the hub's).
        """
        settings = self._probe
        while True:
            try:
                delay = await self._probe_round(connection, cluster)
            except Exception as exc:  # supervised: a probe failure is this cluster's state
                log.warning("event=liveness_probe_error cluster=%s error=%s", connection.name, exc)
                delay = settings.interval
            await anyio.sleep(delay)

    async def _probe_round(self, connection: Connection, cluster: apply.Cluster) -> float:
        """Probe if it is time; how long to wait before the next round."""
        settings = self._probe
        if connection.via is not None and connection.link != "up":
            connection.liveness.misses = 0
            return settings.interval  # the tunnel reports this cluster's reach until it is up
        heard = max(cluster.last_answer, self._heard.get(connection.identity, -float("inf")))
        self._heard[connection.identity] = heard
        quiet = anyio.current_time() - heard
        if connection.liveness.state == "answering" and quiet < settings.interval:
            return settings.interval - quiet  # it (or its server, to another entry) answered lately
        asked = anyio.current_time()
        prober, cause = await self._probes.do(
            connection.identity or connection.name, lambda: self._probe_once(connection, cluster)
        )
        if cause and cluster.last_answer >= asked:
            cause = ""  # the probe's answer was late (a busy hub), but the server answered others
        if cause and prober != connection.name:  # name this entry first, then whose probe it was
            cause = f"cluster {connection.name} (its API server probed through {prober}): {cause}"
        if not cause:
            self._heard[connection.identity] = anyio.current_time()
            self._answered(connection, cluster)
            return settings.interval
        self._silent(connection, cluster, cause)
        # one slow answer is not an outage: probe again at once until `failures` in a row
        return 0.0 if connection.liveness.misses < settings.failures else settings.interval

    async def _probe_once(self, connection: Connection, cluster: apply.Cluster) -> tuple[str, str]:
        """One probe through `cluster`: the entry that probed, and ``""`` when it (or any entry
        of its identity, meanwhile) was answered, else why not."""
        asked = anyio.current_time()
        try:
            cause = await cluster.probe(self._probe.path)
        except Exception as exc:  # a bug or an unmapped error of the client: no answer either
            cause = f"liveness probe of cluster {connection.name} failed: {exc}"
        if cause and self._answered_since(connection.identity, asked):
            cause = ""  # late, but the server answered another entry meanwhile: not hung
        return connection.name, cause

    def _answered_since(self, identity: str, since: float) -> bool:
        for other in self.by_name.values():
            client = other.client
            if other.identity == identity and client is not None and client.last_answer >= since:
                return True
        return False

    def _silent(self, connection: Connection, cluster: apply.Cluster, cause: str) -> None:
        live = connection.liveness
        live.misses += 1
        if live.misses < self._probe.failures:
            return
        breaker = self._breakers.for_cluster(connection.name) if self._breakers else None
        if live.state == "silent":
            live.cause = cluster.fenced = cause
            if breaker is not None and not breaker.status().held:
                breaker.trip(cause)  # released meanwhile (a new breaker): still silent
            return
        live.state, live.since, live.cause, live.recovered = "silent", time.time(), cause, False
        abandoned = cluster.fence(cause)
        if breaker is not None:
            breaker.trip(cause)
        log.warning(
            "event=cluster_silent cluster=%s misses=%d abandoned=%d cause=%s",
            connection.name,
            live.misses,
            abandoned,
            cause,
        )

    def _answered(self, connection: Connection, cluster: apply.Cluster) -> None:
        live = connection.liveness
        live.misses = 0
        if live.state == "answering":
            return
        was = live.state
        live.state, live.since, live.cause = "answering", time.time(), ""
        cluster.unfence()
        breaker = self._breakers.for_cluster(connection.name) if self._breakers else None
        if breaker is not None and (breaker.status().held or was == "unknown"):
            breaker.release()  # a breaker left open by an earlier connection closes too
        if was == "silent":
            live.recovered = True
            log.info("event=cluster_answering cluster=%s", connection.name)


def _with_liveness(connection: Connection, link: Reach | None) -> Reach | None:
    """The reach of `connection` once its liveness is counted in: a silent cluster is down
    (whatever its tunnel says); one answering again is recovered (once)."""
    live = connection.liveness  # asked of every connection each round: the name only if told
    if live.state == "silent" and (link is None or link.state in ("up", "connecting")):
        return Reach(
            cluster=connection.name,
            state="down",
            error=live.cause,
            recovered=False,
            since=live.since,
        )
    if live.recovered and (link is None or link.state == "up"):
        live.recovered = False
        return Reach(
            cluster=connection.name, state="up", error="", recovered=True, since=live.since
        )
    return link


def _update(connection: Connection, now: transport.TunnelState) -> Reach:
    """Record the link state `now` on `connection`; a refusal withholds its client."""
    name = connection.name
    error = now.error or ""
    if now.state == "refused":
        state = "refused"
        connection.cluster = None
        connection.error = error or f"cluster {name}: SSH route refused"
    elif now.state == "reconnecting" or (now.state == "connecting" and now.error):
        state = "down"
    else:
        state = now.state  # connecting (first attempt in flight) | up
    if connection.link == "refused" and state != "refused":
        connection.cluster, connection.error = connection.client, ""
    recovered = state == "up" and connection.down
    connection.down = state in ("down", "refused") or (connection.down and state != "up")
    if state != connection.link:
        log.info("event=cluster_link cluster=%s state=%s error=%s", name, state, error or "-")
    connection.link = state
    return Reach(cluster=name, state=state, error=error, recovered=recovered, since=time.time())


def show_reach(state: ClusterState, reach: Reach, *, parked: bool) -> None:
    """Show a cluster's reach (tunnel, liveness) on its board entry (`parked`: breaker open)."""
    before = state.state
    if reach.state == "refused":
        state.state, state.error = "error", reach.error
    elif reach.state == "down":
        state.state, state.error = "parked", f"unreachable: {reach.error}"
    elif reach.state == "up" and state.state in ("connecting", "parked", "error") and not parked:
        state.state, state.error = "ready", ""
    if state.state != before:
        state.since = reach.since or time.time()
