"""Connections to the clusters of ``clusters/``: one long-lived client each, swapped on change.

Each cluster's connection lives in a task of its own (the client is an async context manager),
inside a cancel scope kept here: a changed kubeconfig cancels the old task and starts a new one; a
removed file cancels it; a file that *breaks* keeps the running connection (the last good one) and
only shows the error. Every client is built with the cluster's rate-limit gate and a status
observer, so every API request of the apply engine is admitted by the hub's limits and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc
from kubernetes_asyncio.config.config_exception import ConfigException

from fleet import apply
from fleet.config.clusters import ClusterFile
from fleet.errors import FleetError
from fleet.runtime import Limits

__all__ = ["Connection", "Connections"]

log = logging.getLogger(__name__)


@dataclass
class Connection:
    """One cluster: the file it came from and, once connected, its client."""

    file: ClusterFile
    cluster: apply.Cluster | None = None
    error: str = ""
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def name(self) -> str:
        return self.file.ref.name


class Connections:
    """The live clients, by cluster name."""

    def __init__(
        self,
        *,
        group: anyio.abc.TaskGroup,
        limits: Limits,
        on_status: Callable[[str, int], None],
    ) -> None:
        self._group = group
        self._limits = limits
        self._on_status = on_status
        self.by_name: dict[str, Connection] = {}

    def get(self, name: str) -> Connection | None:
        return self.by_name.get(name)

    async def open(self, file: ClusterFile) -> Connection:
        """Connect to `file`'s cluster, replacing any connection of the same name."""
        self.close(file.ref.name)
        connection = Connection(file=file)
        self.by_name[file.ref.name] = connection
        await self._group.start(self._hold, connection)
        return connection

    def close(self, name: str) -> None:
        connection = self.by_name.pop(name, None)
        if connection is not None:
            connection.scope.cancel()
            self._limits.drop(name)

    def close_all(self) -> None:
        for name in list(self.by_name):
            self.close(name)

    async def _hold(
        self, connection: Connection, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        name = connection.name
        with connection.scope:
            try:
                async with apply.connect(
                    connection.file.path,
                    name=name,
                    gate=self._limits.for_cluster(name),
                    on_status=lambda status: self._on_status(name, status),
                ) as cluster:
                    connection.cluster = cluster
                    log.info(
                        "event=cluster_connected cluster=%s server=%s", name, connection.file.server
                    )
                    task_status.started()
                    await anyio.sleep_forever()
            except (ConfigException, FleetError, OSError, ValueError, KeyError, TypeError) as exc:
                # kubernetes-asyncio's loader raises plain errors for bad credentials data
                connection.error = f"{connection.file.path}: cannot load credentials: {exc}"
                log.warning("event=cluster_connect_failed cluster=%s error=%s", name, exc)
                task_status.started()
            finally:
                connection.cluster = None
