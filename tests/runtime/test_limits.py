"""Per-cluster limits on virtual time: bucket timing, 429 handling (AIMD), concurrency."""

from __future__ import annotations

import anyio
import pytest

from fleet.runtime.clock import VirtualClock
from fleet.runtime.limits import AdaptiveBucket, ClusterLimitSettings, Limits

pytestmark = pytest.mark.anyio


async def grant_times(limits: Limits, cluster: str, count: int, *, run_for: float) -> list[float]:
    clock = limits._clock  # the test's virtual clock
    assert isinstance(clock, VirtualClock)
    granted: list[float] = []

    async def one() -> None:
        async with limits.for_cluster(cluster).request():
            granted.append(clock.now())

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
        await clock.advance(run_for)
    return granted


async def test_defaults_are_the_peers_50_qps_burst_100() -> None:
    settings = ClusterLimitSettings()
    assert (settings.qps, settings.burst) == (50.0, 100)


async def test_qps2_burst4_lets_4_through_at_once_then_one_every_half_second() -> None:
    limits = Limits(
        ClusterLimitSettings(qps=2.0, burst=4, max_concurrency=100), clock=VirtualClock()
    )
    times = await grant_times(limits, "a", 8, run_for=10.0)
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0])
    stats = limits.for_cluster("a").stats()
    assert stats.waits == 4
    assert stats.waited_seconds == pytest.approx(0.5 + 1.0 + 1.5 + 2.0)


async def test_clusters_have_separate_buckets() -> None:
    clock = VirtualClock()
    limits = Limits(ClusterLimitSettings(qps=1.0, burst=1, max_concurrency=10), clock=clock)
    assert await grant_times(limits, "a", 2, run_for=5.0) == [0.0, 1.0]
    limits_b = limits.for_cluster("b")
    assert limits_b.bucket.delay(clock.now()) == 0.0


async def test_429_with_retry_after_closes_until_then_and_halves_the_rate() -> None:
    clock = VirtualClock()
    limits = Limits(ClusterLimitSettings(qps=2.0, burst=4, max_concurrency=100), clock=clock)
    cluster = limits.for_cluster("a")
    granted: list[float] = []

    async def one() -> None:
        async with cluster.request():
            granted.append(clock.now())
        cluster.observe(200)

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(one)
        await clock.run_until_blocked()
        assert granted == [0.0] * 4  # the burst; six requests wait for tokens
        cluster.observe(429, retry_after=3.0)  # one of the four answered 429
        await clock.advance(20.0)
    # nothing until t=3, even for requests already waiting; then one probe at t=3 and the halved
    # rate, one a second
    assert granted == pytest.approx([0.0] * 4 + [3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    stats = cluster.stats()
    assert stats.throttled == 1
    assert stats.requests == {429: 1, 200: 10}
    assert stats.rate == 1.0


async def test_429_without_retry_after_drains_the_burst_and_halves() -> None:
    clock = VirtualClock()
    limits = Limits(ClusterLimitSettings(qps=4.0, burst=8, max_concurrency=100), clock=clock)
    cluster = limits.for_cluster("a")
    cluster.observe(429)
    assert await grant_times(limits, "a", 3, run_for=5.0) == pytest.approx([0.5, 1.0, 1.5])


def test_rate_recovers_additively_after_quiet_periods() -> None:
    settings = ClusterLimitSettings(
        qps=8.0, burst=8, min_qps=1.0, increase=1.0, quiet_period=10.0, decrease_interval=1.0
    )
    bucket = AdaptiveBucket(settings, now=0.0)
    bucket.throttle(now=0.0, retry_after=None)
    assert bucket.rate == 4.0
    bucket.throttle(now=0.5, retry_after=None)  # same overload, seen by a request in flight
    assert bucket.rate == 4.0
    bucket.throttle(now=1.0, retry_after=None)  # a new 429 one interval later halves again
    assert bucket.rate == 2.0
    rates = []
    for now in [10.9, 11.0, 20.9, 21.0, 31.0, 61.0, 71.0, 81.0, 1000.0]:
        bucket.delay(now)
        rates.append(bucket.rate)
    assert rates == [2.0, 3.0, 3.0, 4.0, 5.0, 8.0, 8.0, 8.0, 8.0]


def test_rate_never_drops_below_min_qps() -> None:
    bucket = AdaptiveBucket(ClusterLimitSettings(qps=4.0, min_qps=1.0), now=0.0)
    for now in range(10):
        bucket.throttle(now=float(now) * 2, retry_after=None)
    assert bucket.rate == 1.0


def test_quiet_period_counts_from_the_end_of_retry_after() -> None:
    settings = ClusterLimitSettings(qps=4.0, burst=4, increase=2.0, quiet_period=10.0)
    bucket = AdaptiveBucket(settings, now=0.0)
    bucket.throttle(now=0.0, retry_after=30.0)
    assert bucket.delay(0.0) == 30.0
    bucket.delay(39.0)
    assert bucket.rate == 2.0
    bucket.delay(40.0)
    assert bucket.rate == 4.0


async def test_concurrency_limit_per_cluster() -> None:
    clock = VirtualClock()
    limits = Limits(ClusterLimitSettings(qps=1000.0, burst=1000, max_concurrency=2), clock=clock)
    finished: list[float] = []
    peak = 0

    async def call() -> None:
        nonlocal peak
        cluster = limits.for_cluster("a")
        async with cluster.request():
            peak = max(peak, cluster.stats().in_flight)
            await clock.sleep(1.0)
        finished.append(clock.now())

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(call)
        await clock.advance(10.0)
    assert finished == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert peak == 2
    assert limits.stats()["a"].in_flight == 0


async def test_overrides_and_drop() -> None:
    clock = VirtualClock()
    limits = Limits(clock=clock, overrides={"small": ClusterLimitSettings(qps=1.0, burst=1)})
    assert limits.for_cluster("small").settings.qps == 1.0
    assert limits.for_cluster("big").settings.qps == 50.0
    limits.drop("small")
    assert list(limits.stats()) == ["big"]
