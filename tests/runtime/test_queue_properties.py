"""Property-style tests of the queue guarantees: random producers and workers on virtual time.

Many producers add random keys at random times (some through the delay heap), several workers
take them and work for random durations, some fail and are requeued rate-limited. Whatever the
seed: no key is ever held by two workers, and every add of a key after the start of its last run
is followed by another run of that key.
"""

from __future__ import annotations

import random

import anyio
import pytest

from fleet.errors import TransientError
from fleet.runtime.breaker import Breakers
from fleet.runtime.clock import VirtualClock
from fleet.runtime.ratelimit import BackoffSettings, ExponentialBackoff
from fleet.runtime.scheduler import Scheduler, SchedulerSettings
from fleet.runtime.workqueue import Handler, WorkQueue, run_worker

pytestmark = pytest.mark.anyio

Key = tuple[str, int]


class Journal:
    """Events in the order they happened: (what, key)."""

    def __init__(self) -> None:
        self.failures = 0  # failed runs: each requeues its key without a journaled add
        self.events: list[tuple[str, Key]] = []
        self.held: set[Key] = set()
        self.overlaps: list[Key] = []

    def start(self, key: Key) -> None:
        if key in self.held:
            self.overlaps.append(key)
        self.held.add(key)
        self.events.append(("start", key))

    def end(self, key: Key) -> None:
        self.held.discard(key)

    def add(self, key: Key) -> None:
        self.events.append(("add", key))

    def check(self) -> None:
        assert self.overlaps == [], f"keys held by two workers: {self.overlaps}"
        pending: set[Key] = set()  # keys with an add not yet followed by a start
        starts = adds = 0
        for what, key in self.events:
            if what == "add":
                pending.add(key)
                adds += 1
            else:
                pending.discard(key)
                starts += 1
        assert pending == set(), f"adds never followed by a run: {sorted(pending)}"
        assert 0 < starts <= adds + self.failures

    failures = 0


async def produce(
    queue: WorkQueue[Key], journal: Journal, clock: VirtualClock, rng: random.Random
) -> None:
    for _ in range(rng.randint(20, 60)):
        await clock.sleep(rng.choice([0.0, 0.0, rng.random() * 0.5]))
        key = (rng.choice("abc"), rng.randint(0, 5))
        delay = rng.choice([0.0, 0.0, 0.0, rng.random()])
        if delay:
            await clock.sleep(delay)  # what add_after does, observed at its due time
        journal.add(key)
        queue.add(key)


def make_handler(journal: Journal, clock: VirtualClock, rng: random.Random) -> Handler[Key]:
    async def handler(key: Key) -> None:
        journal.start(key)
        try:
            await clock.sleep(rng.choice([0.0, rng.random(), rng.random() * 3]))
            if rng.random() < 0.15:
                journal.failures += 1
                raise TransientError("flaky")
        finally:
            journal.end(key)

    return handler


async def settle(queue: WorkQueue[Key], clock: VirtualClock) -> None:
    while len(queue) or queue.processing or queue.delayed:
        await clock.sleep(1.0)


def new_queue(clock: VirtualClock) -> WorkQueue[Key]:
    backoff = ExponentialBackoff(BackoffSettings(base=0.01, cap=1.0, jitter=0.0))
    return WorkQueue(clock=clock, rate_limiter=backoff)


@pytest.mark.parametrize("seed", range(25))
async def test_queue_guarantees_hold_under_random_load(seed: int) -> None:
    rng = random.Random(seed)
    clock = VirtualClock()
    queue = new_queue(clock)
    journal = Journal()
    handler = make_handler(journal, clock, rng)
    async with clock.autojump(), anyio.create_task_group() as workers:
        for _ in range(rng.randint(2, 6)):
            workers.start_soon(run_worker, queue, handler)
        async with anyio.create_task_group() as producers:
            for _ in range(rng.randint(3, 8)):
                producers.start_soon(produce, queue, journal, clock, rng)
        await settle(queue, clock)
        queue.shutdown()
    journal.check()


@pytest.mark.parametrize("seed", range(10))
async def test_scheduler_keeps_the_guarantees_under_random_load(seed: int) -> None:
    """The same properties through the fair scheduler, with its per-cluster waiting lines."""
    rng = random.Random(1000 + seed)
    clock = VirtualClock()
    queue = new_queue(clock)
    journal = Journal()
    settings = SchedulerSettings(workers=rng.randint(2, 6), per_cluster=rng.randint(1, 2))
    scheduler = Scheduler(
        make_handler(journal, clock, rng),
        settings,
        queue=queue,
        clock=clock,
        breakers=Breakers(clock=clock),
    )
    running_per_cluster: list[int] = []

    async def watch() -> None:
        while True:
            running_per_cluster.extend(load.running for load in scheduler.load().values())
            await clock.sleep(0.05)

    async with clock.autojump(), anyio.create_task_group() as group:
        await group.start(scheduler.run)
        group.start_soon(watch)
        async with anyio.create_task_group() as producers:
            for _ in range(rng.randint(3, 8)):
                producers.start_soon(produce, queue, journal, clock, rng)
        await settle(queue, clock)
        scheduler.stop()
        group.cancel_scope.cancel()
    journal.check()
    assert max(running_per_cluster) <= settings.per_cluster
