"""Retries of transient API and git errors, with tenacity, on the injectable clock.

What is retried is decided by class alone (:mod:`fleet.errors`): a :class:`TransientError` or a
transport failure (:class:`OSError`, which includes :class:`TimeoutError`) is retried with
exponential backoff and jitter, a few times; a :class:`StalledError` never is (retrying cannot help
until the input changes), nor is :class:`ClusterUnavailable` (the circuit breaker already decides
when that cluster is tried again), nor any other error (a bug is not fixed by waiting). After the
last attempt the last error itself is raised, not a wrapper, so callers classify it as usual.

These retries are short and inside one unit of work; longer waits belong to the work queue's
per-key backoff, which survives the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from fleet.errors import StalledError, TransientError
from fleet.runtime.breaker import ClusterUnavailable
from fleet.runtime.clock import Clock

__all__ = ["RetrySettings", "call_with_retry", "is_retryable", "retrying"]

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrySettings:
    """At most `attempts` tries; waits of `initial` doubling up to `cap`, plus 0 to `jitter` s."""

    attempts: int = 4
    initial: float = 0.2
    cap: float = 5.0
    jitter: float = 0.1


def is_retryable(exc: BaseException) -> bool:
    """Transient errors and transport failures; never stalled errors or a parked cluster."""
    if isinstance(exc, StalledError | ClusterUnavailable):
        return False
    return isinstance(exc, TransientError | OSError)


def retrying(
    settings: RetrySettings = RetrySettings(), *, clock: Clock, what: str
) -> tenacity.AsyncRetrying:
    """A tenacity controller for ``async for attempt in retrying(...): with attempt: ...``.

    `what` names the operation in logs (a cluster, a repository).
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "event=retry what=%s attempt=%d delay=%.3f error=%r",
            what,
            state.attempt_number,
            delay,
            error,
        )

    return tenacity.AsyncRetrying(
        sleep=clock.sleep,
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=tenacity.wait_exponential(multiplier=settings.initial, max=settings.cap)
        + tenacity.wait_random(0.0, settings.jitter),
        retry=tenacity.retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    settings: RetrySettings = RetrySettings(),
    *,
    clock: Clock,
    what: str,
) -> T:
    """Await ``call()``, retrying transient failures as :func:`retrying` describes."""
    async for attempt in retrying(settings, clock=clock, what=what):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
