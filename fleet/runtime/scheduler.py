"""The fair scheduler: a global worker pool over one work queue, no cluster holding up another.

Keys name their cluster (``cluster_of(key)``, by default ``key[0]`` for ``(cluster, app)`` keys).
``workers`` tasks take keys from one :class:`WorkQueue` in FIFO order. Two rules keep one dead or
slow cluster from taking the pool:

- at most ``per_cluster`` keys of one cluster run at once. A worker that gets a key of a cluster
  already at its limit does not wait: it sets the key aside in that cluster's waiting line (the key
  stays *processing* in the queue, so it still cannot run twice and an add meanwhile re-runs it
  after) and goes back for the next key. A worker that finishes a key of a cluster runs the oldest
  waiting key of that cluster next. So a cluster holds at most ``per_cluster`` workers, and the
  others keep the remaining ones;
- a cluster whose circuit breaker is open is parked: its keys are not run but put back in the delay
  heap until the next probe time, at no cost to the pool. The first key at probe time is the probe.

Each run is bounded by ``reconcile_timeout`` on the clock (a timeout is an outage for the breaker)
and ends as :func:`~fleet.runtime.workqueue.process_one` decides: forget on success, rate-limited
requeue on error, done in every case. :meth:`Scheduler.run` starts the workers and reports ready;
:meth:`Scheduler.stop` shuts the queue down, lets runs in flight finish, and ``run`` returns.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskStatus

from fleet.runtime.breaker import Breakers
from fleet.runtime.clock import Clock
from fleet.runtime.workqueue import Handler, QueueShutDown, WorkQueue, process_one

__all__ = ["ClusterLoad", "Scheduler", "SchedulerSettings", "first_item"]

K = TypeVar("K", bound=Hashable)


def first_item(key: Any) -> str:
    """The cluster of a ``(cluster, app)`` key."""
    return str(key[0])


@dataclass(frozen=True)
class SchedulerSettings:
    workers: int = 32
    per_cluster: int = 4
    reconcile_timeout: float | None = 600.0


@dataclass(frozen=True)
class ClusterLoad:
    """How busy one cluster is, for status and metrics."""

    running: int
    waiting: int


class Scheduler(Generic[K]):
    """Runs `handler` on the keys of `queue` with a fair share of workers per cluster."""

    def __init__(
        self,
        handler: Handler[K],
        settings: SchedulerSettings = SchedulerSettings(),
        *,
        queue: WorkQueue[K],
        clock: Clock,
        breakers: Breakers,
        cluster_of: Callable[[K], str] = first_item,
    ) -> None:
        if settings.workers < 1 or settings.per_cluster < 1:
            raise ValueError(f"scheduler needs workers and per_cluster >= 1: {settings}")
        self.settings = settings
        self.queue = queue
        self._handler = handler
        self._clock = clock
        self._breakers = breakers
        self._cluster_of = cluster_of
        self._running: collections.Counter[str] = collections.Counter()
        self._waiting: dict[str, collections.deque[K]] = collections.defaultdict(collections.deque)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the workers; ready once they are; return when stopped and work in flight ended."""
        async with anyio.create_task_group() as group:
            for index in range(self.settings.workers):
                group.start_soon(self._worker, name=f"fleet-worker-{index}")
            task_status.started()

    def stop(self) -> None:
        """Stop taking keys; runs in flight finish, then :meth:`run` returns."""
        self.queue.shutdown()

    def load(self) -> dict[str, ClusterLoad]:
        clusters = set(self._running) | {c for c, line in self._waiting.items() if line}
        return {
            c: ClusterLoad(running=self._running[c], waiting=len(self._waiting[c]))
            for c in sorted(clusters)
        }

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            cluster = self._cluster_of(key)
            if self._running[cluster] >= self.settings.per_cluster:
                self._waiting[cluster].append(key)  # held, not run: its turn comes in _serve
                continue
            await self._serve(cluster, key)

    async def _serve(self, cluster: str, key: K | None) -> None:
        """Run `key`, then the waiting keys of the same cluster, one after another."""
        waiting = self._waiting[cluster]
        while key is not None:
            if self.queue.is_shut_down:
                self.queue.done(key)
            else:
                self._running[cluster] += 1
                try:
                    await self._run_one(cluster, key)
                finally:
                    self._running[cluster] -= 1
            key = waiting.popleft() if waiting else None
        if not self._running[cluster]:
            del self._running[cluster]
            self._waiting.pop(cluster, None)

    async def _run_one(self, cluster: str, key: K) -> None:
        breaker = self._breakers.for_cluster(cluster)
        if not breaker.admit():
            self.queue.add_after(key, breaker.retry_in())
            self.queue.done(key)
            return
        timeout = self.settings.reconcile_timeout

        async def guarded(key: K) -> float | None:
            async with breaker.record():
                if timeout is None:
                    return await self._handler(key)
                with self._clock.fail_after(timeout):
                    return await self._handler(key)

        await process_one(self.queue, guarded, key)
