"""The hub's Prometheus metrics, in one registry of its own (no process-global state).

Events are counted here as they happen; figures that other parts keep (git requests per
repository, rate-limiter waits, cluster state) are read at scrape time by a collector the hub
registers, so they cannot drift from their source. Labels stay bounded: per cluster where an
operator needs to see one cluster misbehave (API requests by code), never per object. The
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
        # per target: cardinality is (apps x clusters) x (3 sync + 6 health + ready + last
        # applied) series; 1,000 targets make 11,000 series (documented in docs/architecture.md)
        self.target_sync = Gauge(
            "fleet_target_sync_status",
            "1 for the sync status (Synced, OutOfSync, Unknown) of an app on a cluster.",
            ["app", "cluster", "status"],
            registry=r,
        )
        self.target_health = Gauge(
            "fleet_target_health_status",
            "1 for the health status of an app on a cluster.",
            ["app", "cluster", "status"],
            registry=r,
        )
        self.target_ready = Gauge(
            "fleet_target_ready",
            "1 when the app on the cluster is green: applied == desired, Synced, Healthy.",
            ["app", "cluster"],
            registry=r,
        )
        self.target_last_applied = Gauge(
            "fleet_target_last_applied_timestamp_seconds",
            "When a sync last wrote to the cluster for the app and succeeded (Unix time).",
            ["app", "cluster"],
            registry=r,
        )
        self.target_events = Counter(
            "fleet_target_events_total",
            "Target events by type (Synced, SyncFailed, RenderFailed, Degraded, Recovered, ...).",
            ["type"],
            registry=r,
        )
        self.renders = Counter(
            "fleet_renders_total",
            "Desired sets by how they were made: render, or cache hit.",
            ["result"],
            registry=r,
        )

    def export(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
