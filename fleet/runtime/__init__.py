"""The hub's scheduling machinery: clock, work queue, rate limits, circuit breakers, retries.

Pure scheduling, no Kubernetes or git I/O: the layers above hand it keys and coroutines.

- :mod:`~fleet.runtime.clock`: an injectable clock, real or virtual (tests assert exact times).
- :mod:`~fleet.runtime.workqueue`: the client-go style work queue, and the worker loop.
- :mod:`~fleet.runtime.ratelimit`: the queue's rate limiters (per-key backoff, bucket, max of both).
- :mod:`~fleet.runtime.limits`: per-cluster API limits (AIMD token bucket, concurrency).
- :mod:`~fleet.runtime.breaker`: a circuit breaker per cluster that parks a dead cluster.
- :mod:`~fleet.runtime.retry`: tenacity retries of transient errors.
- :mod:`~fleet.runtime.scheduler`: the fair worker pool over the queue.
"""

from fleet.runtime.breaker import (
    Breakers,
    BreakerSettings,
    BreakerState,
    BreakerStatus,
    CircuitBreaker,
    ClusterUnavailable,
    is_outage,
)
from fleet.runtime.clock import Clock, RealClock, VirtualClock
from fleet.runtime.limits import ClusterLimits, ClusterLimitSettings, Limits, LimitStats
from fleet.runtime.ratelimit import (
    BackoffSettings,
    BucketLimiter,
    BucketSettings,
    ExponentialBackoff,
    MaxOf,
    RateLimiter,
    default_limiter,
)
from fleet.runtime.retry import RetrySettings, call_with_retry, is_retryable, retrying
from fleet.runtime.scheduler import ClusterLoad, Scheduler, SchedulerSettings
from fleet.runtime.supervise import SuperviseSettings, supervised
from fleet.runtime.workqueue import Handler, QueueShutDown, WorkQueue, process_one, run_worker

__all__ = [
    "BackoffSettings",
    "BreakerSettings",
    "BreakerState",
    "BreakerStatus",
    "Breakers",
    "BucketLimiter",
    "BucketSettings",
    "CircuitBreaker",
    "Clock",
    "ClusterLimitSettings",
    "ClusterLimits",
    "ClusterLoad",
    "ClusterUnavailable",
    "ExponentialBackoff",
    "Handler",
    "LimitStats",
    "Limits",
    "MaxOf",
    "QueueShutDown",
    "RateLimiter",
    "RealClock",
    "RetrySettings",
    "Scheduler",
    "SchedulerSettings",
    "SuperviseSettings",
    "VirtualClock",
    "WorkQueue",
    "call_with_retry",
    "default_limiter",
    "is_outage",
    "is_retryable",
    "process_one",
    "retrying",
    "run_worker",
    "supervised",
]
