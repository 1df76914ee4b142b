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
them is liveness for all. So the probe loop is one per identity, not one per entry: each connected
entry joins its identity's members, and the identity's loop (a task of the hub's group, started by
the first member and ended with the last) wakes when nothing was heard from any member for an
interval, or when a member joins (it knows nothing yet), and probes once through one member. The
answer, or the silence, counts for every member: each is answering, or counts the miss itself and
is found silent (its own client fenced, its own breaker tripped, its cause naming it and the
member the probe went through). At 10,000 entries of one server an idle hub had spent most of its
time waking one loop per entry every interval (18% of a core with no app at all). A probe without
an answer in time is no miss when any member heard another answer meanwhile: the probe's timeout
also runs while the hub's own loop is busy (1,000 targets syncing at once on a loaded machine), and
a server that answers is not hung; found silent for that, every entry had been fenced in the
middle of a commit and its targets shown unreachable. What the board must hear of (a silent
entry, one answering again) is kept aside as it happens, so :meth:`Connections.reach` visits those
and the tunnelled entries, not every entry each round.

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
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from fleet import apply, transport
from fleet.apply import sessions as api_sessions
from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError, FleetError
from fleet.hub import configured
from fleet.report import ClusterState
from fleet.runtime import Breakers, Limits

if TYPE_CHECKING:  # the client package is imported when a cluster connects, not before listening
    from kubernetes_asyncio.client import Configuration

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


@dataclass
class _Members:
    """The connected entries of one identity, and what wakes their probe loop."""

    connections: dict[str, Connection] = field(default_factory=dict)
    joined: set[str] = field(default_factory=set)  # members that joined since the last round
    woken: anyio.Event = field(default_factory=anyio.Event)


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
        self._members: dict[str, _Members] = {}  # identity -> its connected entries
        self._noted: set[str] = set()  # entries silent, or answering again and not yet reported
        self._via: set[str] = set()  # connected entries reached through a tunnel
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
        for name in sorted(self._noted | self._via):
            connection = self.by_name.get(name)
            if connection is None or connection.client is None:
                self._noted.discard(name)
                continue
            now = self._link(connection)
            link = _update(connection, now) if now is not None else None
            reach = _with_liveness(connection, link)
            if connection.liveness.state != "silent" and not connection.liveness.recovered:
                self._noted.discard(name)  # reported: nothing more to say until it changes
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
        from kubernetes_asyncio.config.config_exception import ConfigException

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
                    self._join(connection)
                    try:
                        task_status.started()
                        await anyio.sleep_forever()
                    finally:
                        self._leave(connection)
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

    def _join(self, connection: Connection) -> None:
        """`connection` is connected: a member of its identity's probe loop (started by the
        first), which it wakes, knowing nothing of the server yet."""
        key = connection.identity or connection.name
        members = self._members.get(key)
        if members is None:
            members = self._members[key] = _Members()
            self._group.start_soon(self._watch_identity, key, members)
        members.connections[connection.name] = connection
        members.joined.add(connection.name)
        if connection.via is not None:
            self._via.add(connection.name)
        members.woken.set()

    def _leave(self, connection: Connection) -> None:
        key = connection.identity or connection.name
        members = self._members.get(key)
        if members is None or members.connections.get(connection.name) is not connection:
            return  # replaced meanwhile by a new connection of the same name
        del members.connections[connection.name]
        members.joined.discard(connection.name)
        self._noted.discard(connection.name)
        self._via.discard(connection.name)
        if not members.connections:
            del self._members[key]
            members.woken.set()  # its loop ends

    async def _watch_identity(self, key: str, members: _Members) -> None:
        """The probe loop of one identity (see the module docstring); ends with its last member.

        Supervised: whatever goes wrong in one round is logged and the next round follows, so
        nothing escapes into the hub's task group.
        """
        settings = self._probe
        while self._members.get(key) is members:
            try:
                delay = await self._identity_round(key, members)
            except Exception as exc:  # supervised: a probe failure is these clusters' state
                names = sorted(members.connections)[:3]
                log.warning("event=liveness_probe_error clusters=%s error=%s", names, exc)
                delay = settings.interval
            if delay > 0:
                with anyio.move_on_after(delay):
                    await members.woken.wait()
            members.woken = anyio.Event()

    def _probed(self, members: _Members) -> list[tuple[Connection, apply.Cluster]]:
        """The members a probe speaks for: connected, and not behind a tunnel that is not up (the
        tunnel reports those until it is)."""
        found = []
        for connection in members.connections.values():
            client = connection.client
            if client is None:
                continue
            if connection.via is not None and connection.link != "up":
                connection.liveness.misses = 0
                continue
            found.append((connection, client))
        return found

    async def _identity_round(self, key: str, members: _Members) -> float:
        """Probe for the members of `key` if it is time; how long to wait before the next round.

        Members that just joined, of a server heard from within the interval, are answering at
        once, without a probe and without a look at the others (10,000 entries joining one
        server would otherwise make a round over all members each): the round over all of them
        comes when the interval since the last answer heard is over.
        """
        settings = self._probe
        now = anyio.current_time()
        joined, members.joined = members.joined, set()
        heard = self._heard.get(key, -float("inf"))
        if joined and now - heard < settings.interval:
            for name in joined:
                connection = members.connections.get(name)
                client = connection.client if connection is not None else None
                if connection is not None and client is not None and connection.via is None:
                    self._answered(connection, client)
                elif connection is not None:
                    members.joined.add(name)  # tunnelled: the full round looks at it
            if not members.joined:
                return settings.interval - (now - heard)
        probed = self._probed(members)
        if not probed:
            return settings.interval
        heard = max(heard, *(c.last_answer for _, c in probed))
        self._heard[key] = heard
        quiet = now - heard
        if quiet < settings.interval and all(m.liveness.state == "answering" for m, _ in probed):
            members.joined.clear()
            return settings.interval - quiet  # a member answered lately: nothing to ask
        prober, client = probed[0]
        cause = await self._probe_once(prober, client, members)
        answered_at = anyio.current_time()
        retry = False
        for connection, each in self._probed(members):  # the members now: some came or went
            own = "" if each.last_answer >= now else cause  # answered another request
            if own and connection is not prober:  # name this entry first, then whose probe it was
                own = f"cluster {connection.name} (its API server probed through {prober.name}): "
                own += cause
            if not own:
                self._heard[key] = answered_at
                self._answered(connection, each)
                continue
            self._silent(connection, each, own)
            retry = retry or connection.liveness.misses < settings.failures
        members.joined.clear()
        # one slow answer is not an outage: probe again at once until `failures` in a row
        return 0.0 if retry else settings.interval

    async def _probe_once(
        self, connection: Connection, cluster: apply.Cluster, members: _Members
    ) -> str:
        """One probe through `cluster`: ``""`` when it (or any member of its identity,
        meanwhile) was answered, else why not."""
        asked = anyio.current_time()
        try:
            cause = await cluster.probe(self._probe.path)
        except Exception as exc:  # a bug or an unmapped error of the client: no answer either
            cause = f"liveness probe of cluster {connection.name} failed: {exc}"
        if cause and any(c.last_answer >= asked for _, c in self._probed(members)):
            cause = ""  # late, but the server answered another entry meanwhile: not hung
        return cause

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
        self._noted.add(connection.name)
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
            self._noted.add(connection.name)
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
