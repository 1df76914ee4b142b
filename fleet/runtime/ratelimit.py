"""Rate limiters for the work queue: one small interface, combinable (the client-go design).

A :class:`RateLimiter` answers ``when(key)``: how long to wait before `key` is worked again, and
counts that as one more failure of `key`; ``forget(key)`` clears what it knows of `key` (call it
after a success). Limiters combine with :class:`MaxOf`, which waits the longest of its parts: the
default, :func:`default_limiter`, is the max of a per-key exponential backoff (5 ms doubling to
1000 s, with jitter) and one token bucket for all keys (10/s, burst 100), so one key failing fast
backs off alone while a storm of failures is throttled overall.

:class:`TokenBucket` is the pure bucket arithmetic (time passed in, no I/O), shared with the
per-cluster API limits of :mod:`fleet.runtime.limits`.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

from fleet.runtime.clock import Clock

__all__ = [
    "BackoffSettings",
    "BucketLimiter",
    "BucketSettings",
    "ExponentialBackoff",
    "MaxOf",
    "RateLimiter",
    "TokenBucket",
    "default_limiter",
]

_EPSILON = 1e-9  # tolerate float dust: 0.9999999999 tokens is one token


class RateLimiter(Protocol):
    """How long a key waits before its next try."""

    def when(self, key: Hashable) -> float:
        """The delay in seconds before `key` may run again; counts one more failure of `key`."""
        ...

    def forget(self, key: Hashable) -> None:
        """Stop tracking `key` (it succeeded)."""
        ...


@dataclass(frozen=True)
class BackoffSettings:
    """Per-key exponential backoff: `base` doubling per failure up to `cap`, plus jitter.

    The delay of the n-th failure (n from 0) is ``min(cap, base * 2**n)`` stretched by a random
    factor in ``[1, 1 + jitter)`` so keys that failed together do not retry together.
    """

    base: float = 0.005
    cap: float = 1000.0
    jitter: float = 0.1


class ExponentialBackoff:
    """Per-key exponential backoff with jitter."""

    def __init__(
        self, settings: BackoffSettings = BackoffSettings(), *, rng: random.Random | None = None
    ) -> None:
        self.settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        s = self.settings
        # 2**n overflows float past n ~ 1024: stop doubling once the cap is reached.
        delay = s.cap if failures >= 64 else min(s.cap, s.base * 2.0**failures)
        return delay * (1.0 + s.jitter * self._rng.random()) if s.jitter else delay

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        """How many times `key` failed since it was last forgotten."""
        return self._failures.get(key, 0)


class TokenBucket:
    """A token bucket: `rate` tokens a second, at most `burst` saved up; starts full.

    Pure arithmetic: every method takes the current time. :meth:`reserve` takes a token now or in
    the future (the bucket may go negative: a queue of reservations); :meth:`delay` and
    :meth:`take` never reserve, for callers that re-check after sleeping.
    """

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, not {rate}/{burst}")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last update (none before ``updated``)."""
        if now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def reserve(self, now: float) -> float:
        """Take one token; return how long to wait until it is really there."""
        self.refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= -_EPSILON else -self.tokens / self.rate

    def delay(self, now: float) -> float:
        """How long until one whole token is available (0 if it is now)."""
        self.refill(now)
        start = max(0.0, self.updated - now)  # the bucket may be closed until a future time
        missing = 1.0 - self.tokens
        return start if missing <= _EPSILON else start + missing / self.rate

    def take(self, now: float) -> bool:
        """Take a token if one is available now."""
        if self.delay(now) > 0.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(frozen=True)
class BucketSettings:
    """One bucket for every key: `qps` requeues a second, `burst` at once."""

    qps: float = 10.0
    burst: int = 100


class BucketLimiter:
    """A token bucket shared by all keys; ``forget`` is a no-op."""

    def __init__(self, settings: BucketSettings = BucketSettings(), *, clock: Clock) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate=settings.qps, burst=settings.burst, now=clock.now())

    def when(self, key: Hashable) -> float:
        return self._bucket.reserve(self._clock.now())

    def forget(self, key: Hashable) -> None:
        return None


class MaxOf:
    """The longest delay of several limiters; ``forget`` forgets in all of them."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOf needs at least one limiter")
        self.limiters = limiters

    def when(self, key: Hashable) -> float:
        return max([limiter.when(key) for limiter in self.limiters])  # ask all: each counts

    def forget(self, key: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(key)


def default_limiter(
    *,
    clock: Clock,
    backoff: BackoffSettings = BackoffSettings(),
    bucket: BucketSettings = BucketSettings(),
    rng: random.Random | None = None,
) -> MaxOf:
    """Per-key exponential backoff combined with one overall bucket (client-go's default)."""
    return MaxOf(ExponentialBackoff(backoff, rng=rng), BucketLimiter(bucket, clock=clock))
