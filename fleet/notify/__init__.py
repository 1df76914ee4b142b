"""Notifications: sinks declared in the config, told of the targets' events and states.

- :mod:`~fleet.notify.settings`: the ``notifications:`` block, validated.
- :mod:`~fleet.notify.messages`: what each sink is sent (pure): webhook, Slack, commit statuses.
- :mod:`~fleet.notify.delivery`: one request with a timeout, retries and Retry-After.
- :mod:`~fleet.notify.outbox`: a sink's bounded queue and its counters.
- :mod:`~fleet.notify.notifier`: the subscriber that only enqueues, and the delivery service.
- :mod:`~fleet.notify.metrics`: the counters as Prometheus metrics.
"""

from fleet.notify.metrics import NotifyCollector
from fleet.notify.notifier import Notifier
from fleet.notify.outbox import Outbox, SinkStats
from fleet.notify.settings import (
    DEFAULT_EVENTS,
    EVENT_TYPES,
    SINK_TYPES,
    DeliverySettings,
    SinkSpec,
    notifications_schema,
    parse_notifications,
)

__all__ = [
    "DEFAULT_EVENTS",
    "EVENT_TYPES",
    "SINK_TYPES",
    "DeliverySettings",
    "Notifier",
    "NotifyCollector",
    "Outbox",
    "SinkSpec",
    "SinkStats",
    "notifications_schema",
    "parse_notifications",
]
