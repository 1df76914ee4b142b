"""The fair scheduler on virtual time: a dead cluster never holds up the others."""

from __future__ import annotations

import collections
import math

import anyio
import pytest

from fleet.errors import StalledError, TransientError
from fleet.runtime.breaker import Breakers, BreakerSettings, BreakerState
from fleet.runtime.clock import VirtualClock
from fleet.runtime.ratelimit import BackoffSettings, ExponentialBackoff
from fleet.runtime.scheduler import Scheduler, SchedulerSettings
from fleet.runtime.workqueue import Handler, WorkQueue

pytestmark = pytest.mark.anyio

Key = tuple[str, str]
HEALTHY = ["h1", "h2", "h3"]


def build(
    handler: Handler[Key], settings: SchedulerSettings, clock: VirtualClock
) -> tuple[Scheduler[Key], Breakers]:
    queue: WorkQueue[Key] = WorkQueue(
        clock=clock,
        rate_limiter=ExponentialBackoff(BackoffSettings(base=0.005, cap=10.0, jitter=0.0)),
    )
    breakers = Breakers(BreakerSettings(failures=3, probe_base=10.0, probe_cap=60.0), clock=clock)
    scheduler = Scheduler(handler, settings, queue=queue, clock=clock, breakers=breakers)
    return scheduler, breakers


async def run_fleet(
    *, with_dead_cluster: bool
) -> tuple[list[tuple[str, float]], list[float], Breakers]:
    """Every healthy reconcile takes 1 s and asks to run again at once (constant demand);
    every call to the dead cluster hangs until the 30 s reconcile timeout."""
    clock = VirtualClock()
    healthy_done: list[tuple[str, float]] = []
    dead_starts: list[float] = []

    async def reconcile(key: Key) -> float | None:
        cluster, _app = key
        if cluster == "dead":
            dead_starts.append(clock.now())
            await clock.sleep(math.inf)
        await clock.sleep(1.0)
        healthy_done.append((cluster, clock.now()))
        return 0.0

    settings = SchedulerSettings(workers=8, per_cluster=2, reconcile_timeout=30.0)
    scheduler, breakers = build(reconcile, settings, clock)
    if with_dead_cluster:  # at the head of the queue: the worst case for head-of-line blocking
        for app in range(20):
            scheduler.queue.add(("dead", f"app{app}"))
    for app in range(10):
        for cluster in HEALTHY:
            scheduler.queue.add((cluster, f"app{app}"))
    async with clock.autojump(), anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await clock.sleep(110.0)
        assert scheduler.load()["h1"].running == 2
        scheduler.stop()
    return [d for d in healthy_done if d[1] <= 110.0], dead_starts, breakers


async def test_a_dead_cluster_does_not_slow_the_others_down() -> None:
    alone, no_dead, _ = await run_fleet(with_dead_cluster=False)
    shared, dead_starts, breakers = await run_fleet(with_dead_cluster=True)

    # the healthy clusters run at full rate, 2 reconciles a second each, from the first second
    per_second = collections.Counter(math.ceil(t) for _, t in shared)
    assert per_second == {second: 6 for second in range(1, 111)}
    # and exactly as they do with no dead cluster at all
    assert shared == alone
    assert no_dead == []

    # the dead cluster held at most 2 workers: 2 calls at t=0, 2 at t=30 when those timed out;
    # the third timeout (t=60) opened the breaker, its keys were parked until the probe at t=70,
    # which timed out at t=100: the next probe is 20 s later
    assert dead_starts == [0.0, 0.0, 30.0, 30.0, 70.0]
    status = breakers.for_cluster("dead").status()
    assert (status.state, status.since, status.next_probe) == (BreakerState.OPEN, 100.0, 120.0)
    assert status.last_error == "TimeoutError"
    assert breakers.for_cluster("h1").state is BreakerState.CLOSED


async def test_a_parked_cluster_comes_back_after_a_successful_probe() -> None:
    clock = VirtualClock()
    up_at = 45.0
    runs: list[tuple[str, float]] = []

    async def reconcile(key: Key) -> None:
        runs.append((key[1], clock.now()))
        if clock.now() < up_at:
            raise ConnectionRefusedError(111, "Connection refused")

    settings = SchedulerSettings(workers=4, per_cluster=2, reconcile_timeout=30.0)
    scheduler, breakers = build(reconcile, settings, clock)
    for app in ["a", "b", "c"]:
        scheduler.queue.add(("c1", app))
    async with clock.autojump(), anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await clock.sleep(100.0)
        scheduler.stop()
    # three refusals open the breaker at t=0; probes at 10, 30 (after 20), 70 (after 40) - the
    # cluster is back at 45, so the probe at 70 succeeds and the other keys run right after
    assert runs == [
        ("a", 0.0),
        ("b", 0.0),
        ("c", 0.0),
        ("a", 10.0),
        ("b", 30.0),
        ("c", 70.0),
        ("a", 70.0),
        ("b", 70.0),
    ]
    assert breakers.for_cluster("c1").state is BreakerState.CLOSED


async def test_errors_decide_what_happens_next_and_stop_lets_work_finish() -> None:
    clock = VirtualClock()
    runs: list[tuple[str, float]] = []

    async def reconcile(key: Key) -> None:
        runs.append((key[1], clock.now()))
        if key[1] == "stalled":
            raise StalledError("path escapes the repository")
        if key[1] == "flaky" and len([r for r in runs if r[0] == "flaky"]) < 3:
            raise TransientError("HTTP 503")
        if key[1] == "slow":
            await clock.sleep(50.0)

    settings = SchedulerSettings(workers=2, per_cluster=2)
    scheduler, breakers = build(reconcile, settings, clock)
    for app in ["stalled", "flaky", "slow"]:
        scheduler.queue.add(("c1", app))
    async with clock.autojump():
        async with anyio.create_task_group() as group:
            await group.start(scheduler.run)
            await clock.sleep(10.0)
            scheduler.stop()
        assert clock.now() == 50.0  # the slow reconcile in flight was allowed to finish
    assert sorted(runs) == [
        ("flaky", 0.0),
        ("flaky", 0.005),
        ("flaky", 0.015),
        ("slow", 0.0),
        ("stalled", 0.0),
    ]
    assert breakers.for_cluster("c1").state is BreakerState.CLOSED  # answers, not outages
