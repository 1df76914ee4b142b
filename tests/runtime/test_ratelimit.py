"""The queue's rate limiters: exact backoff sequences, the bucket, and their max."""

from __future__ import annotations

import random

import pytest

from fleet.runtime.clock import VirtualClock
from fleet.runtime.ratelimit import (
    BackoffSettings,
    BucketLimiter,
    BucketSettings,
    ExponentialBackoff,
    MaxOf,
    TokenBucket,
    default_limiter,
)


def test_backoff_doubles_per_key_from_5ms_and_is_capped() -> None:
    backoff = ExponentialBackoff(BackoffSettings(base=0.005, cap=0.1, jitter=0.0))
    assert [backoff.when("a") for _ in range(7)] == [0.005, 0.01, 0.02, 0.04, 0.08, 0.1, 0.1]
    assert backoff.when("b") == 0.005  # per key
    assert backoff.failures("a") == 7
    backoff.forget("a")
    assert backoff.when("a") == 0.005


def test_backoff_never_overflows() -> None:
    backoff = ExponentialBackoff(BackoffSettings(base=0.005, cap=1000.0, jitter=0.0))
    assert [backoff.when("a") for _ in range(2000)][-1] == 1000.0


def test_jitter_stretches_within_bounds() -> None:
    backoff = ExponentialBackoff(
        BackoffSettings(base=1.0, cap=8.0, jitter=0.5), rng=random.Random(7)
    )
    delays = [backoff.when(key) for key in range(200)]
    assert all(1.0 <= d < 1.5 for d in delays)
    assert len(set(delays)) == 200  # keys failing together do not retry together


def test_token_bucket_qps2_burst4_lets_4_through_then_one_every_half_second() -> None:
    bucket = TokenBucket(rate=2.0, burst=4, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(7)] == [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.5]
    # reservations are honoured: at t=1.5 the queue of reservations is exactly used up
    assert bucket.delay(1.5) == pytest.approx(0.5)


def test_token_bucket_does_not_save_more_than_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=4, now=0.0)
    assert all(bucket.take(0.0) for _ in range(4))
    assert not bucket.take(0.0)
    assert bucket.delay(0.0) == 0.5
    assert [bucket.take(100.0) for _ in range(5)] == [True] * 4 + [False]


def test_bucket_limiter_is_shared_by_all_keys() -> None:
    clock = VirtualClock()
    limiter = BucketLimiter(BucketSettings(qps=10.0, burst=2), clock=clock)
    assert [limiter.when(key) for key in "abcd"] == pytest.approx([0.0, 0.0, 0.1, 0.2])


def test_max_of_backoff_and_bucket() -> None:
    clock = VirtualClock()
    limiter = MaxOf(
        ExponentialBackoff(BackoffSettings(base=1.0, cap=100.0, jitter=0.0)),
        BucketLimiter(BucketSettings(qps=1.0, burst=1), clock=clock),
    )
    # key a: backoff 1, 2, 4 dominates; the bucket's queue of reservations (0, 1, 2) is below
    assert [limiter.when("a") for _ in range(3)] == [1.0, 2.0, 4.0]
    # key b: its backoff is 1, but the shared bucket now makes it wait 3
    assert limiter.when("b") == 3.0
    limiter.forget("a")
    assert limiter.when("a") == 4.0  # backoff forgotten (1), bucket still queued (4)


def test_default_limiter_starts_at_5ms() -> None:
    limiter = default_limiter(clock=VirtualClock(), backoff=BackoffSettings(jitter=0.0))
    assert [limiter.when("k") for _ in range(3)] == [0.005, 0.01, 0.02]
