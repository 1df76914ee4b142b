"""Per-cluster limits on virtual time: bucket timing, 429 handling (AIMD), concurrency."""

from __future__ import annotations

import anyio
import pytest

from fleet.runtime.clock import VirtualClock
from fleet.runtime.limits import (
    AdaptiveBucket,
    ClusterLimits,
    ClusterLimitSettings,
    Limits,
    retry_delay,
)

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


async def sequential(
    cluster: ClusterLimits, clock: VirtualClock, answers: list[tuple[int, float | None]]
) -> list[float]:
    """Send one request after another, each answered by the next of `answers`, as the apply
    client does: a 429 is retried after :meth:`ClusterLimits.retry_delay`. The send times."""
    sent: list[float] = []

    async def run() -> None:
        attempt = 0
        for status, retry_after in answers:
            async with cluster.request():
                sent.append(clock.now())
            cluster.observe(status, retry_after)
            if status == 429:
                delay = cluster.retry_delay(attempt, retry_after)
                assert delay is not None
                attempt += 1
                await clock.sleep(delay)
            else:
                attempt = 0

    async with clock.autojump():
        await run()
    return sent


async def test_a_429_with_retry_after_holds_the_bucket_that_long_then_one_probe() -> None:
    clock = VirtualClock()
    settings = ClusterLimitSettings(
        qps=20.0, burst=4, max_concurrency=100, min_qps=2.0, increase=0.0, max_hold=5.0
    )
    limits = Limits(settings, clock=clock)
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
    # rate, 10 a second
    assert granted == pytest.approx([0.0] * 4 + [3.0, 3.1, 3.2, 3.3, 3.4, 3.5])
    stats = cluster.stats()
    assert stats.throttled == 1
    assert stats.requests == {429: 1, 200: 10}
    assert stats.rate == 10.0


def test_a_retry_after_holds_the_bucket_at_most_max_hold() -> None:
    settings = ClusterLimitSettings(qps=10.0, burst=10, max_hold=1.0, max_retry_after=10.0)
    bucket = AdaptiveBucket(settings, now=0.0)
    bucket.throttle(now=0.0, retry_after=30.0)
    assert bucket.delay(0.0) == 1.0  # the bucket reopens after max_hold...
    delay = retry_delay(settings, attempt=0, retry_after=30.0)
    assert delay == 10.0  # ...and the 429'd request itself waits at most max_retry_after


def test_retry_delay_honours_retry_after_and_is_bounded() -> None:
    settings = ClusterLimitSettings(retry_attempts=4, retry_backoff=0.5, max_retry_after=3.0)
    assert [retry_delay(settings, attempt=n, retry_after=1.0) for n in range(5)] == [
        1.0,
        1.0,
        1.0,
        1.0,
        None,  # the fifth 429 in a row is the answer
    ]
    assert [retry_delay(settings, attempt=n, retry_after=None) for n in range(5)] == [
        0.5,
        1.0,
        2.0,
        3.0,  # capped
        None,
    ]
    assert retry_delay(settings, attempt=0, retry_after=0.0) == 0.0


def test_429s_within_one_decrease_interval_count_once_and_hold_once() -> None:
    settings = ClusterLimitSettings(
        qps=40.0, burst=40, min_qps=1.0, increase=0.0, decrease_interval=1.0, max_hold=1.0
    )
    bucket = AdaptiveBucket(settings, now=0.0)
    bucket.throttle(now=0.0, retry_after=1.0)
    assert (bucket.rate, bucket.delay(0.0)) == (20.0, 1.0)
    bucket.take(1.0)  # the probe
    bucket.throttle(now=1.0 - 1e-6, retry_after=1.0)  # seen by a request sent before the hold
    bucket.throttle(now=0.5, retry_after=1.0)
    assert bucket.rate == 20.0  # the same overload: no second halving...
    assert bucket.delay(1.0) == pytest.approx(0.05)  # ...and no second hold
    bucket.throttle(now=1.0, retry_after=None)  # one interval later: halves again
    assert bucket.rate == 10.0
    assert (bucket.throttled, bucket.decreases) == (4, 2)


def test_at_the_floor_429s_no_longer_hold_the_bucket() -> None:
    settings = ClusterLimitSettings(
        qps=8.0, burst=8, min_qps=4.0, increase=0.0, decrease_interval=1.0, max_hold=1.0
    )
    bucket = AdaptiveBucket(settings, now=0.0)
    bucket.throttle(now=0.0, retry_after=1.0)  # 8 -> 4 qps: held one second
    assert (bucket.rate, bucket.delay(0.0)) == (4.0, 1.0)
    assert bucket.take(1.0)
    bucket.throttle(now=2.0, retry_after=1.0)  # a later overload, already at the floor
    assert bucket.rate == 4.0
    # the next token at the floor's rate (no burst after a 429), not after a 1 s hold
    assert bucket.delay(2.0) == pytest.approx(0.25)
    assert bucket.decreases == 2


def test_rate_recovers_additively_per_answer_without_a_quiet_period() -> None:
    settings = ClusterLimitSettings(qps=8.0, burst=8, min_qps=1.0, increase=1.0)
    bucket = AdaptiveBucket(settings, now=0.0)
    bucket.throttle(now=0.0, retry_after=None)
    assert bucket.rate == 4.0
    rates = []
    for _ in range(6):
        bucket.answered(now=0.1)  # at once: no quiet period to wait for
        rates.append(bucket.rate)
    assert rates == [5.0, 6.0, 7.0, 8.0, 8.0, 8.0]


async def test_429_answers_are_not_recovery_and_5xx_neither() -> None:
    clock = VirtualClock()
    limits = Limits(ClusterLimitSettings(qps=8.0, min_qps=1.0, increase=1.0), clock=clock)
    cluster = limits.for_cluster("a")
    cluster.observe(429)
    cluster.observe(503)
    cluster.observe(500)
    assert cluster.stats().rate == 4.0
    cluster.observe(404)  # an answer: the server is not overloaded
    cluster.observe(201)
    assert cluster.stats().rate == 6.0


def test_rate_never_drops_below_the_floor() -> None:
    bucket = AdaptiveBucket(ClusterLimitSettings(qps=50.0, min_qps=5.0), now=0.0)
    for now in range(20):
        bucket.throttle(now=float(now) * 2, retry_after=None)
    assert bucket.rate == 5.0
    assert ClusterLimitSettings().min_qps == 5.0  # a commit's requests go within seconds


async def test_at_the_floor_a_commit_of_ten_requests_goes_in_under_two_seconds() -> None:
    clock = VirtualClock()
    cluster = Limits(ClusterLimitSettings(increase=0.0), clock=clock).for_cluster("a")
    for step in range(10):
        if step:
            await clock.advance(1.0)
        cluster.observe(429, retry_after=None)  # 429s one interval apart: halves to the floor
    assert cluster.stats().rate == 5.0
    start = clock.now()
    sent = await sequential(cluster, clock, [(200, None)] * 10)  # no burst left: 5 a second
    assert [t - start for t in sent] == pytest.approx([0.2 * n for n in range(1, 11)])


async def test_a_third_of_requests_429d_after_retry_after_one_second() -> None:
    """Every third answer a 429 with Retry-After: 1 (about the bench's 30 %): each 429'd request
    waits its own second and is retried, and the rate climbs back with every answer: nine sends
    in 2.2 s of virtual time, never slower than the 5 qps floor."""
    clock = VirtualClock()
    cluster = Limits(ClusterLimitSettings(), clock=clock).for_cluster("a")
    answers: list[tuple[int, float | None]] = [
        (429, 1.0) if n % 3 == 2 else (200, None) for n in range(9)
    ]
    sent = await sequential(cluster, clock, answers)
    t4 = 1.0 + 1 / 26  # at 1 the retry takes the probe token; its answer adds 1 qps back
    t5 = t4 + 1 / 27  # one more answer: 27 qps; this send is answered 429 again...
    t6 = t5 + 1.0  # ...one interval after the first: 27 -> 13.5, held for its Retry-After
    assert sent == pytest.approx(
        [0.0, 0.0, 0.0, 1.0, t4, t5, t6, t6 + 1 / 14.5, t6 + 1 / 14.5 + 1 / 15.5]
    )
    assert cluster.stats().rate == 15.5 / 2  # the last send was a 429 too, one interval on
    assert cluster.stats().retries == 3
    assert cluster.bucket.decreases == 3


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
