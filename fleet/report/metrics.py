"""The hub's Prometheus metrics, in one registry of its own (no process-global state).

Labels stay bounded: per cluster where an operator needs to see one cluster misbehave (API
requests by code, limiter waits, breaker state), never per object; per repository for git. The
histograms' buckets span a no-op reconcile (milliseconds) to a slow rollout (minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


@dataclass
class Metrics:
    """Every metric the hub exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.reconcile_seconds = Histogram(
            "fleet_reconcile_duration_seconds",
            "Time of one reconcile of an app on a cluster.",
            ["result"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_to_applied_seconds = Histogram(
            "fleet_commit_to_applied_seconds",
            "From the commit's timestamp (or its webhook) to the end of the apply on a cluster.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("fleet_queue_depth", "Keys waiting in the work queue.", registry=r)
        self.api_requests = Counter(
            "fleet_api_requests_total",
            "Kubernetes API requests by cluster and HTTP status.",
            ["cluster", "code"],
            registry=r,
        )
        self.limiter_wait_seconds = Counter(
            "fleet_rate_limiter_wait_seconds_total",
            "Time spent waiting for a cluster's tokens.",
            ["cluster"],
            registry=r,
        )
        self.git_requests = Counter(
            "fleet_git_requests_total",
            "git ls-remote and fetch calls by repository.",
            ["repo", "op", "result"],
            registry=r,
        )
        self.renders = Counter(
            "fleet_renders_total",
            "Renders by result (hit = served from the cache).",
            ["result"],
            registry=r,
        )
        self.cluster_up = Gauge(
            "fleet_cluster_up",
            "1 when the cluster is reachable, 0 when parked or broken.",
            ["cluster"],
            registry=r,
        )
        self.apps_out_of_sync = Gauge(
            "fleet_apps_out_of_sync", "(app, cluster) pairs not Synced.", registry=r
        )

    def export(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
