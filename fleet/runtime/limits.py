"""Per-cluster API limits: an adaptive token bucket and a concurrency limit for each cluster.

The apply layer wraps every API call::

    cluster = limits.for_cluster(name)
    async with cluster.request():
        response = await call()
    cluster.observe(response.status, retry_after=seconds_or_none)
    delay = cluster.retry_delay(attempt, retry_after)  # after a 429: wait, then retry (or None)

:meth:`ClusterLimits.request` first takes one of the cluster's concurrency slots, then waits for a
token (so at most ``max_concurrency`` callers wait on a bucket), and holds the slot for the call.
A liveness probe passes ``slot=False``: it takes a token but no slot, so requests hung in every
slot cannot hold back the probe that is to notice them.

The bucket is AIMD, like TCP's congestion window: it starts at ``qps`` (burst ``burst``; 50/100 as
in Argo CD and Flux).

- **Decrease**: an HTTP 429 halves the rate, never below ``min_qps`` (a floor that still lets a
  commit through in seconds; ``qps`` when that is lower); 429s within ``decrease_interval`` of
  the last halving count once, since the requests in flight all saw the same overload. A 429
  also drops the saved-up burst.
- **Retry-After** is the 429'd request's own: :meth:`ClusterLimits.retry_delay` tells the caller
  to wait that long (capped at ``max_retry_after``) before its retry, for at most
  ``retry_attempts`` retries (a backstop: the apply client bounds a request's retrying by time,
  :attr:`fleet.apply.kube.Timeouts.throttled`, since each retry honours the server's wait).
  The 429 that halves the rate also holds the whole bucket, for its
  Retry-After but never longer than ``max_hold``; the bucket then reopens with one token, so one
  request probes the server before the halved rate applies. Later 429s of the same interval hold
  nothing, nor do 429s once the rate is at its floor: a share of requests refused must not stop
  the others (the collapse of issue 11: at 80% 429s a hold every second kept the bucket shut).
- **Recovery** is additive per answer: every answer that is not a 429 or a 5xx adds ``increase``
  qps back, up to ``qps``. No quiet period: a cluster that answers recovers as fast as it answers.

Waiters re-check after each sleep, so a hold also holds back requests that were already waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from fleet.runtime.clock import Clock
from fleet.runtime.ratelimit import TokenBucket

__all__ = [
    "AdaptiveBucket",
    "ClusterLimitSettings",
    "ClusterLimits",
    "LimitStats",
    "Limits",
    "retry_delay",
]

TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class ClusterLimitSettings:
    """The API budget of one cluster, and how it reacts to 429 Too Many Requests."""

    qps: float = 50.0
    burst: int = 100
    max_concurrency: int = 10
    min_qps: float = 5.0  # the floor of the decrease
    increase: float = 1.0  # qps added back per answered request
    decrease_interval: float = 1.0  # 429s within this of the last halving count once
    max_hold: float = 1.0  # the longest a Retry-After holds the whole bucket
    retry_attempts: int = 100  # retries of one 429'd request (backstop; the client bounds by time)
    max_retry_after: float = 10.0  # the longest one retry waits, whatever Retry-After says
    retry_backoff: float = 0.5  # a 429 without Retry-After: wait this, doubling per attempt


def retry_delay(
    settings: ClusterLimitSettings, *, attempt: int, retry_after: float | None
) -> float | None:
    """How long the `attempt`-th retry (from 0) of a 429'd request waits; ``None``: give up.

    The server's Retry-After when it sent one, else ``retry_backoff`` doubling per attempt; in
    both cases capped at ``max_retry_after``.
    """
    if attempt >= settings.retry_attempts:
        return None
    if retry_after is not None and retry_after >= 0:
        wait = retry_after
    else:
        wait = settings.retry_backoff * 2.0 ** min(attempt, 32)
    return min(wait, settings.max_retry_after)


class AdaptiveBucket:
    """A token bucket whose rate halves on 429 and grows back per answer (pure: time passed in)."""

    def __init__(self, settings: ClusterLimitSettings, *, now: float) -> None:
        self.settings = settings
        self._bucket = TokenBucket(rate=settings.qps, burst=settings.burst, now=now)
        self._last_decrease = -float("inf")
        self.throttled = 0
        self.decreases = 0

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def delay(self, now: float) -> float:
        """How long until a request may go (0: take a token with :meth:`take`)."""
        return self._bucket.delay(now)

    def take(self, now: float) -> bool:
        return self._bucket.take(now)

    def answered(self, *, now: float) -> None:
        """The server answered a request (not a 429): add ``increase`` back, up to ``qps``."""
        s = self.settings
        if self._bucket.rate < s.qps:
            self._bucket.refill(now)  # tokens earned so far count at the old rate
            self._bucket.rate = min(s.qps, self._bucket.rate + s.increase)

    def throttle(self, *, now: float, retry_after: float | None) -> None:
        """The server answered 429: halve the rate once per interval; the first holds the bucket."""
        self.throttled += 1
        s = self.settings
        if now < self._last_decrease + s.decrease_interval:
            return  # the same overload, seen by another request in flight
        self._last_decrease = now
        self.decreases += 1
        self._bucket.refill(now)
        floor = min(s.min_qps, s.qps)
        lowered = self._bucket.rate > floor
        self._bucket.rate = max(floor, self._bucket.rate / 2.0)
        self._bucket.tokens = min(self._bucket.tokens, 0.0)  # no burst right after a 429
        hold = min(retry_after, s.max_hold) if retry_after is not None and lowered else 0.0
        if hold > 0 and now + hold > self._bucket.updated:
            self._bucket.updated = now + hold  # nothing accrues before then...
            self._bucket.tokens = 1.0  # ...and one request probes when it reopens


@dataclass(frozen=True)
class LimitStats:
    """What a status page or /metrics shows of one cluster's limits."""

    rate: float
    in_flight: int
    waits: int
    waited_seconds: float
    throttled: int
    requests: dict[int, int]
    retries: int = 0  # 429'd requests sent again after their Retry-After


class ClusterLimits:
    """The API budget of one cluster: :meth:`request` around each call, :meth:`observe` after."""

    def __init__(self, name: str, settings: ClusterLimitSettings, *, clock: Clock) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock
        self.bucket = AdaptiveBucket(settings, now=clock.now())
        self._slots = anyio.CapacityLimiter(settings.max_concurrency)
        self._waits = 0
        self._waited = 0.0
        self._requests: dict[int, int] = {}
        self._retries = 0

    @asynccontextmanager
    async def request(self, *, slot: bool = True) -> AsyncIterator[None]:
        """Hold a concurrency slot (unless `slot` is false) and one token for one API call."""
        if not slot:
            await self._token()
            yield
            return
        async with self._slots:
            await self._token()
            yield

    async def _token(self) -> None:
        started = self._clock.now()
        while not self.bucket.take(self._clock.now()):
            await self._clock.sleep(self.bucket.delay(self._clock.now()))
        waited = self._clock.now() - started
        if waited > 0:
            self._waits += 1
            self._waited += waited

    def observe(self, status_code: int, retry_after: float | None = None) -> None:
        """Report the HTTP status of a call (and its Retry-After in seconds, if any)."""
        self._requests[status_code] = self._requests.get(status_code, 0) + 1
        now = self._clock.now()
        if status_code == TOO_MANY_REQUESTS:
            self.bucket.throttle(now=now, retry_after=retry_after)
        elif status_code < 500:
            self.bucket.answered(now=now)

    def retry_delay(self, attempt: int, retry_after: float | None) -> float | None:
        """How long the `attempt`-th retry of a 429'd request waits (``None``: give up)."""
        delay = retry_delay(self.settings, attempt=attempt, retry_after=retry_after)
        if delay is not None:
            self._retries += 1
        return delay

    def stats(self) -> LimitStats:
        return LimitStats(
            rate=self.bucket.rate,
            in_flight=int(self._slots.borrowed_tokens),
            waits=self._waits,
            waited_seconds=self._waited,
            throttled=self.bucket.throttled,
            requests=dict(self._requests),
            retries=self._retries,
        )


class Limits:
    """The limits of every cluster, made on first use; a cluster that leaves is :meth:`drop`-ped."""

    def __init__(
        self,
        settings: ClusterLimitSettings = ClusterLimitSettings(),
        *,
        clock: Clock,
        overrides: dict[str, ClusterLimitSettings] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._overrides = dict(overrides or {})
        self._clusters: dict[str, ClusterLimits] = {}

    def for_cluster(self, name: str) -> ClusterLimits:
        limits = self._clusters.get(name)
        if limits is None:
            settings = self._overrides.get(name, self.settings)
            limits = self._clusters[name] = ClusterLimits(name, settings, clock=self._clock)
        return limits

    def drop(self, name: str) -> None:
        self._clusters.pop(name, None)

    def stats(self) -> dict[str, LimitStats]:
        return {name: limits.stats() for name, limits in sorted(self._clusters.items())}
