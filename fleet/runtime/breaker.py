"""A circuit breaker per cluster: a dead cluster is parked, shown, and probed with backoff.

States: *closed* (calls go through) -> *open* after ``failures`` consecutive outage errors (by
default transport failures: connection refused, resets, timeouts, i.e. :class:`OSError`, which
includes :class:`TimeoutError`). While open the cluster is parked: :meth:`CircuitBreaker.check`
fails fast with :class:`ClusterUnavailable`, which names the cluster and the last cause. At the
next probe time the first call is let through alone as a probe (*half-open*): if it succeeds, or
the server answers at all (any error that is not an outage), the breaker closes; if it fails, the
breaker opens again and the delay to the next probe doubles, from ``probe_base`` up to
``probe_cap``. A probe that is cancelled leaves the breaker open with a probe due at once.

A liveness probe that gets no answer opens the breaker at once with :meth:`CircuitBreaker.trip`
(a hung apiserver answers nothing, so waiting for ``failures`` calls to time out would take
minutes) and *holds* it open: the probe is then the authority on the cluster's liveness, so no
call is admitted and neither a call's success nor its non-outage error (a render error, an error
wrapped beyond recognition) closes it; only the probe's next answer does,
:meth:`CircuitBreaker.release`. If the probe stops (its connection ends), :meth:`unhold` hands
the breaker back to the usual half-open probing.

Errors the server answered (a 4xx, a 5xx turned into :class:`~fleet.errors.TransientError`) never
trip the breaker: the cluster is reachable, retrying is the work queue's business.

:meth:`CircuitBreaker.status` is the observable state for status pages and metrics: state, since
when, consecutive failures, last error, next probe time.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fleet.errors import TransientError
from fleet.runtime.clock import Clock

__all__ = [
    "BreakerSettings",
    "BreakerState",
    "BreakerStatus",
    "Breakers",
    "CircuitBreaker",
    "ClusterUnavailable",
    "is_outage",
]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class ClusterUnavailable(TransientError):
    """The cluster is parked by its circuit breaker; the call was not made."""

    def __init__(self, cluster: str, *, cause: str | None, retry_in: float) -> None:
        super().__init__(
            f"cluster {cluster!r} is unreachable (last error: {cause or 'unknown'}); "
            f"parked, next probe in {retry_in:.1f}s"
        )
        self.cluster = cluster
        self.cause = cause
        self.retry_in = retry_in


def is_outage(exc: BaseException) -> bool:
    """A transport failure: the cluster did not answer (refused, reset, unreachable, timeout)."""
    return isinstance(exc, OSError | TimeoutError)


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 5
    probe_base: float = 1.0
    probe_cap: float = 300.0


@dataclass(frozen=True)
class BreakerStatus:
    cluster: str
    state: BreakerState
    since: float
    failures: int
    last_error: str | None
    next_probe: float | None
    held: bool = False  # held open by a liveness probe (see :meth:`CircuitBreaker.trip`)


class CircuitBreaker:
    """The breaker of one cluster (see the module docstring)."""

    def __init__(
        self,
        cluster: str,
        settings: BreakerSettings = BreakerSettings(),
        *,
        clock: Clock,
        trips: Callable[[BaseException], bool] = is_outage,
        on_change: Callable[[BreakerStatus], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self._clock = clock
        self._trips = trips
        self._on_change = on_change
        self.state = BreakerState.CLOSED
        self._since = clock.now()
        self._failures = 0
        self._probes_failed = 0
        self._last_error: str | None = None
        self._next_probe: float | None = None
        self._held = False

    def status(self) -> BreakerStatus:
        return BreakerStatus(
            cluster=self.cluster,
            state=self.state,
            since=self._since,
            failures=self._failures,
            last_error=self._last_error,
            next_probe=self._next_probe,
            held=self._held,
        )

    def retry_in(self) -> float:
        """Seconds until a call may be admitted (0 when closed or a probe is due)."""
        if self.state is BreakerState.CLOSED:
            return 0.0
        if self._next_probe is None:  # half-open: a probe is in flight
            return self.settings.probe_base
        left = self._next_probe - self._clock.now()
        if self._held:  # only the liveness probe reopens it: look again later, never spin
            return max(self.settings.probe_base, left)
        return max(0.0, left)

    def admit(self) -> bool:
        """Whether a call may go now; the first call at probe time becomes the probe."""
        if self.state is BreakerState.CLOSED:
            return True
        if self._held:
            return False
        if self.state is BreakerState.OPEN and self.retry_in() <= 0.0:
            self._move(BreakerState.HALF_OPEN, next_probe=None)
            return True
        return False

    def check(self) -> None:
        """Raise :class:`ClusterUnavailable` unless a call may go now."""
        if not self.admit():
            raise ClusterUnavailable(self.cluster, cause=self._last_error, retry_in=self.retry_in())

    def success(self) -> None:
        """The cluster answered (ignored while a liveness probe holds the breaker open)."""
        if self._held:
            return
        self._failures = 0
        self._probes_failed = 0
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED, next_probe=None)

    def failure(self, exc: BaseException) -> None:
        """A call failed with `exc`; only outages count, any other error is an answer."""
        if isinstance(exc, ClusterUnavailable):
            return
        if not self._trips(exc):
            self.success()  # an answer (unless held: then the probe decides)
            return
        self._failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.state is BreakerState.HALF_OPEN:
            self._probes_failed += 1
            self._open()
        elif self.state is BreakerState.CLOSED and self._failures >= self.settings.failures:
            self._open()

    def trip(self, cause: str) -> None:
        """Open now and hold open, whatever the count: a liveness probe found the cluster
        silent (`cause`). Already open: the cause is updated, the probe time kept."""
        self._last_error = cause
        self._held = True
        if self.state is BreakerState.OPEN:
            if self._on_change is not None:
                self._on_change(self.status())
            return
        self._failures = max(self._failures, self.settings.failures)
        if self.state is BreakerState.HALF_OPEN:
            self._probes_failed += 1
        self._open()

    def release(self) -> None:
        """The liveness probe got an answer: close."""
        self._held = False
        self.success()

    def unhold(self) -> None:
        """The liveness probe stopped: stay as is, back to the usual half-open probing."""
        self._held = False

    def abandon(self) -> None:
        """A call was cancelled: if it was the probe, a new probe is due at once."""
        if self.state is BreakerState.HALF_OPEN:
            self._move(BreakerState.OPEN, next_probe=self._clock.now())

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Fail fast if parked, else run the block and record how it went."""
        self.check()
        async with self.record():
            yield

    @asynccontextmanager
    async def record(self) -> AsyncIterator[None]:
        """Run the block of a call already admitted (:meth:`admit`) and record how it went."""
        try:
            yield
        except Exception as exc:
            self.failure(exc)
            raise
        except BaseException:
            self.abandon()
            raise
        self.success()

    def _open(self) -> None:
        s = self.settings
        delay = min(s.probe_cap, s.probe_base * 2.0 ** min(self._probes_failed, 64))
        self._move(BreakerState.OPEN, next_probe=self._clock.now() + delay)

    def _move(self, state: BreakerState, *, next_probe: float | None) -> None:
        if state is not self.state:
            self._since = self._clock.now()
        self.state = state
        self._next_probe = next_probe
        if self._on_change is not None:
            self._on_change(self.status())


class Breakers:
    """The breakers of every cluster, made on first use."""

    def __init__(
        self,
        settings: BreakerSettings = BreakerSettings(),
        *,
        clock: Clock,
        trips: Callable[[BaseException], bool] = is_outage,
        on_change: Callable[[BreakerStatus], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._trips = trips
        self._on_change = on_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_cluster(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = CircuitBreaker(
                name, self.settings, clock=self._clock, trips=self._trips, on_change=self._on_change
            )
        return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """The breaker of `name` if it has one (never makes one)."""
        return self._breakers.get(name)

    def drop(self, name: str) -> None:
        self._breakers.pop(name, None)

    def statuses(self) -> dict[str, BreakerStatus]:
        return {name: b.status() for name, b in sorted(self._breakers.items())}
