"""The notifier's counters as Prometheus metrics, read when scraped (no state of their own).

:class:`NotifyCollector` is registered on the hub's registry; each scrape reads
:meth:`~fleet.notify.Notifier.stats` and yields, labelled by sink and sink type,
``fleet_notifications_sent_total``, ``fleet_notifications_failed_total``,
``fleet_notifications_dropped_total``, ``fleet_notifications_retried_total``,
``fleet_notifications_deduplicated_total`` and the gauge ``fleet_notifications_queued``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleet.notify.notifier import Notifier

__all__ = ["NotifyCollector"]

_COUNTERS = {
    "sent": "notifications delivered (a 2xx answer)",
    "failed": "notifications given up (rejected, out of attempts, or the sink's secret missing)",
    "dropped": "notifications dropped unsent because the sink's queue was full",
    "retried": "delivery attempts after the first",
    "deduplicated": "events not sent again within the sink's dedup window",
}


class NotifyCollector(Collector):
    """Per-sink notification counters, read from the notifier at each scrape."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def collect(self) -> Iterator[Metric]:
        stats = self._notifier.stats()
        types = self._notifier.sink_types()
        for name, help_text in _COUNTERS.items():
            family = CounterMetricFamily(
                f"fleet_notifications_{name}", help_text, labels=["sink", "type"]
            )
            for sink, counts in stats.items():
                family.add_metric([sink, types[sink]], float(getattr(counts, name)))
            yield family
        queued = GaugeMetricFamily(
            "fleet_notifications_queued", "notifications waiting", labels=["sink", "type"]
        )
        for sink, counts in stats.items():
            queued.add_metric([sink, types[sink]], float(counts.queued))
        yield queued
