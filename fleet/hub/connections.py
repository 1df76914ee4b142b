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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from kubernetes_asyncio.config.config_exception import ConfigException

from fleet import apply, transport
from fleet.config.clusters import ClusterFile
from fleet.errors import ConfigError, FleetError
from fleet.report import ClusterState
from fleet.runtime import Limits

__all__ = ["Connection", "Connections", "Reach", "show_reach"]

log = logging.getLogger(__name__)


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


class Connections:
    """The live clients, by cluster name."""

    def __init__(
        self,
        *,
        group: anyio.abc.TaskGroup,
        limits: Limits,
        on_status: Callable[[str, int], None],
        tunnels: transport.Tunnels | None = None,
    ) -> None:
        self._group = group
        self._limits = limits
        self._on_status = on_status
        self._tunnels = tunnels
        self.by_name: dict[str, Connection] = {}

    def get(self, name: str) -> Connection | None:
        return self.by_name.get(name)

    async def open(self, file: ClusterFile) -> Connection:
        """Connect to `file`'s cluster, replacing any connection of the same name.

        A tunnel is kept across the replacement (same route: same local port, same SSH link).
        """
        self._cancel(file.ref.name)
        connection = Connection(file=file)
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

    def reach(self) -> list[Reach]:
        """Each connected tunnelled cluster's link now; withholds or restores refused clients."""
        if self._tunnels is None:
            return []
        states = self._tunnels.states()
        found: list[Reach] = []
        for name, connection in self.by_name.items():
            now = states.get(name)
            if connection.via is None or connection.client is None or now is None:
                continue
            found.append(_update(connection, now))
        return found

    def _cancel(self, name: str) -> None:
        connection = self.by_name.pop(name, None)
        if connection is not None:
            connection.scope.cancel()
            self._limits.drop(name)

    async def _source(self, connection: Connection) -> Path | dict[str, Any]:
        """The kubeconfig to connect with: the file, or its copy rewritten to dial the tunnel."""
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
                ) as cluster:
                    connection.cluster = connection.client = cluster
                    log.info(
                        "event=cluster_connected cluster=%s server=%s via=%s",
                        name,
                        connection.file.server,
                        connection.via or "direct",
                    )
                    task_status.started()
                    await anyio.sleep_forever()
            except (ConfigException, FleetError, OSError, ValueError, KeyError, TypeError) as exc:
                # kubernetes-asyncio's loader raises plain errors for bad credentials data
                connection.error = f"{connection.file.path}: cannot load credentials: {exc}"
                log.warning("event=cluster_connect_failed cluster=%s error=%s", name, exc)
                task_status.started()
            finally:
                connection.cluster = connection.client = None


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
    return Reach(cluster=name, state=state, error=error, recovered=recovered)


def show_reach(state: ClusterState, reach: Reach, *, parked: bool) -> None:
    """Show a tunnelled cluster's link on its board entry (`parked`: its breaker is open)."""
    if reach.state == "refused":
        state.state, state.error = "error", reach.error
    elif reach.state == "down":
        state.state, state.error = "parked", f"unreachable: {reach.error}"
    elif reach.state == "up" and state.state in ("connecting", "parked", "error") and not parked:
        state.state, state.error = "ready", ""
