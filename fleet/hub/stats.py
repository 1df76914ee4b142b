"""Metrics read at scrape time from the parts that keep them: git mirrors, rate limits, clusters.

A prometheus-client custom collector: nothing is copied on a timer, so a scrape always shows the
figures as their owners hold them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fleet.hub.hub import Hub

__all__ = ["StatsCollector"]


class StatsCollector(Collector):
    """git requests per repository, limiter waits and rate per cluster, cluster state."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        git = CounterMetricFamily(
            "fleet_git_requests",
            "git requests to remotes, by repository and operation.",
            labels=["repo", "op"],
        )
        for repo in self._hub.sources.repos():
            mirror = self._hub.sources.mirror(repo.fetch_url).stats
            git.add_metric([repo.key, "ls-remote"], mirror.ls_remotes)
            git.add_metric([repo.key, "fetch"], mirror.fetches)
        yield git
        waited = CounterMetricFamily(
            "fleet_rate_limiter_wait_seconds",
            "Time API calls waited for a token, by cluster.",
            labels=["cluster"],
        )
        rate = GaugeMetricFamily(
            "fleet_rate_limiter_qps",
            "Current allowed request rate, by cluster (AIMD).",
            labels=["cluster"],
        )
        throttled = CounterMetricFamily(
            "fleet_api_throttled", "HTTP 429 answers, by cluster.", labels=["cluster"]
        )
        for cluster, stats in self._hub.limits.stats().items():
            waited.add_metric([cluster], stats.waited_seconds)
            rate.add_metric([cluster], stats.rate)
            throttled.add_metric([cluster], stats.throttled)
        yield waited
        yield rate
        yield throttled
        up = GaugeMetricFamily(
            "fleet_cluster_up",
            "1 when the cluster is connected and not parked.",
            labels=["cluster"],
        )
        for name, state in self._hub.board.clusters.items():
            up.add_metric([name], 1.0 if state.state == "ready" else 0.0)
        yield up
        out = GaugeMetricFamily("fleet_apps_out_of_sync", "(app, cluster) pairs not Synced.")
        out.add_metric([], float(sum(c.sync != "Synced" for c in self._hub.board.cells.values())))
        yield out
