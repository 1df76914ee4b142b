"""Per-cluster API limits: an adaptive token bucket and a concurrency limit for each cluster.

The apply layer wraps every API call::

    cluster = limits.for_cluster(name)
    async with cluster.request():
        response = await call()
    cluster.observe(response.status, retry_after=seconds_or_none)

:meth:`ClusterLimits.request` first takes one of the cluster's concurrency slots, then waits for a
token (so at most ``max_concurrency`` callers wait on a bucket), and holds the slot for the call.

The bucket is AIMD, like TCP's congestion window: it starts at ``qps`` (burst ``burst``; 50/100 as
in Argo CD and Flux). An HTTP 429 halves the rate (not below ``min_qps``; 429s within
``decrease_interval`` of the last halving count once, since requests in flight all see the same
overload). A ``Retry-After`` closes the bucket until then; it reopens with one token, so one request
probes the server, then the halved rate applies. After each ``quiet_period`` without a 429 the rate
grows by ``increase`` until it is back at ``qps``. Waiters re-check after each sleep, so a 429 also
holds back requests that were already waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from fleet.runtime.clock import Clock
from fleet.runtime.ratelimit import TokenBucket

__all__ = ["AdaptiveBucket", "ClusterLimitSettings", "ClusterLimits", "LimitStats", "Limits"]

TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class ClusterLimitSettings:
    """The API budget of one cluster."""

    qps: float = 50.0
    burst: int = 100
    max_concurrency: int = 10
    min_qps: float = 1.0
    increase: float = 5.0
    quiet_period: float = 10.0
    decrease_interval: float = 1.0


class AdaptiveBucket:
    """A token bucket whose rate halves on 429 and recovers additively (pure: time passed in)."""

    def __init__(self, settings: ClusterLimitSettings, *, now: float) -> None:
        self.settings = settings
        self._bucket = TokenBucket(rate=settings.qps, burst=settings.burst, now=now)
        self._calm_since = now  # the quiet period counts from here
        self._last_decrease = -float("inf")
        self.throttled = 0

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def _recover(self, now: float) -> None:
        s = self.settings
        if self._bucket.rate >= s.qps or now < self._calm_since + s.quiet_period:
            return
        periods = int((now - self._calm_since) // s.quiet_period)
        self._bucket.refill(now)  # tokens earned so far at the old rate
        self._bucket.rate = min(s.qps, self._bucket.rate + periods * s.increase)
        self._calm_since += periods * s.quiet_period

    def delay(self, now: float) -> float:
        """How long until a request may go (0: take a token with :meth:`take`)."""
        self._recover(now)
        return self._bucket.delay(now)

    def take(self, now: float) -> bool:
        self._recover(now)
        return self._bucket.take(now)

    def throttle(self, *, now: float, retry_after: float | None) -> None:
        """The server answered 429: halve the rate, and close until `retry_after` if given."""
        self.throttled += 1
        s = self.settings
        self._bucket.refill(now)
        if now >= self._last_decrease + s.decrease_interval:
            self._last_decrease = now
            self._bucket.rate = max(s.min_qps, self._bucket.rate / 2.0)
        self._bucket.tokens = min(self._bucket.tokens, 0.0)  # no burst right after a 429
        if retry_after is not None and retry_after > 0:
            reopen = now + retry_after
            if reopen > self._bucket.updated:
                self._bucket.updated = reopen  # nothing accrues before then...
                self._bucket.tokens = 1.0  # ...and one request probes when it reopens
        self._calm_since = max(now, self._bucket.updated)


@dataclass(frozen=True)
class LimitStats:
    """What a status page or /metrics shows of one cluster's limits."""

    rate: float
    in_flight: int
    waits: int
    waited_seconds: float
    throttled: int
    requests: dict[int, int]


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

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Hold a concurrency slot and one token for the duration of one API call."""
        async with self._slots:
            started = self._clock.now()
            while not self.bucket.take(self._clock.now()):
                await self._clock.sleep(self.bucket.delay(self._clock.now()))
            waited = self._clock.now() - started
            if waited > 0:
                self._waits += 1
                self._waited += waited
            yield

    def observe(self, status_code: int, retry_after: float | None = None) -> None:
        """Report the HTTP status of a call (and its Retry-After in seconds, if any)."""
        self._requests[status_code] = self._requests.get(status_code, 0) + 1
        if status_code == TOO_MANY_REQUESTS:
            self.bucket.throttle(now=self._clock.now(), retry_after=retry_after)

    def stats(self) -> LimitStats:
        return LimitStats(
            rate=self.bucket.rate,
            in_flight=int(self._slots.borrowed_tokens),
            waits=self._waits,
            waited_seconds=self._waited,
            throttled=self.bucket.throttled,
            requests=dict(self._requests),
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
