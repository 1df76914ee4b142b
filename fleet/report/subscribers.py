"""The readers of the targets' records: history, metrics and the log, each a subscriber.

:class:`~fleet.report.Targets` calls every subscriber with each committed record and the events
its change produced. Here are the hub's own: history keeps every event and a sync row for each
attempt that applied or failed (the audit trail ``fleet history`` reads); metrics set the
per-target gauges and count events; the log writes one line per event. None of them writes
status, and none of them may block (the history's SQLite insert is a local WAL append; the
PostgreSQL backend only appends to a bounded buffer that its own thread drains).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from fleet.report.history import EventRecord, HistoryStore, SyncRecord
from fleet.report.metrics import Metrics
from fleet.report.targets import HEALTH_ORDER, SYNC_STATES, TargetEvent, TargetStatus

__all__ = ["HistoryWriter", "LogWriter", "MetricsWriter"]

log = logging.getLogger("fleet.events")

_SYNC_ROWS = {"Synced": "synced", "Healed": "synced"}
_FAILED_ROWS = {"SyncFailed", "RenderFailed", "Conflict", "Refused", "PruneRefused", "ReadFailed"}


class HistoryWriter:
    """Every event into ``events``; applies and failures into ``syncs``."""

    def __init__(self, history: HistoryStore) -> None:
        self._history = history

    def __call__(self, status: TargetStatus, events: tuple[TargetEvent, ...]) -> None:
        for event in events:
            self._history.record_event(
                EventRecord(
                    time=event.time,
                    cluster=event.cluster,
                    app=event.app,
                    type=event.type,
                    severity=event.severity,
                    message=event.message[:2000],
                    commit_sha=event.commit,
                    sync=event.sync,
                    health=event.health,
                )
            )
            if event.type in _SYNC_ROWS or event.type in _FAILED_ROWS:
                self._history.record(_sync_row(status, event))


def _sync_row(status: TargetStatus, event: TargetEvent) -> SyncRecord:
    counts = dict(event.details.get("counts") or {})
    started = event.details.get("started_at")
    committed = event.details.get("committed_at")
    return SyncRecord(
        app=event.app,
        cluster=event.cluster,
        revision=event.commit,
        started_at=float(started) if started is not None else event.time,
        finished_at=event.time,
        result=_SYNC_ROWS.get(event.type, "failed"),
        created=int(counts.get("created", 0)),
        configured=int(counts.get("configured", 0)),
        unchanged=int(counts.get("unchanged", 0)),
        pruned=int(counts.get("pruned", 0)),
        failed=int(counts.get("failed", 0)),
        error="" if event.type in _SYNC_ROWS else event.message[:2000],
        committed_at=float(committed) if committed is not None else None,
        health=status.health,
    )


class MetricsWriter:
    """Per-target gauges (sync, health, ready, last applied) and an event counter. Each target's
    labelled children are looked up once and kept (a commit reaching 1,000 targets had made
    eleven label lookups per record), and dropped with the target's series."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._children: dict[tuple[str, str], _Children] = {}

    def __call__(self, status: TargetStatus, events: tuple[TargetEvent, ...]) -> None:
        m = self._metrics
        removed = any(e.type == "Removed" for e in events)
        for event in events:
            m.target_events.labels(type=event.type).inc()
        if removed:
            self._children.pop((status.app, status.cluster), None)
            for sync in SYNC_STATES:
                _remove(m.target_sync, status.app, status.cluster, sync)
            for health in HEALTH_ORDER:
                _remove(m.target_health, status.app, status.cluster, health)
            _remove(m.target_ready, status.app, status.cluster)
            _remove(m.target_last_applied, status.app, status.cluster)
            return
        children = self._children.get((status.app, status.cluster))
        if children is None:
            children = self._children[(status.app, status.cluster)] = _Children.of(m, status)
        for sync, gauge in children.sync.items():
            gauge.set(1.0 if status.sync == sync else 0.0)
        for health, gauge in children.health.items():
            gauge.set(1.0 if status.health == health else 0.0)
        children.ready.set(1.0 if status.ready else 0.0)
        if status.last_applied_at is not None:  # no series before the first apply
            if children.last_applied is None:
                children.last_applied = m.target_last_applied.labels(
                    app=status.app, cluster=status.cluster
                )
            children.last_applied.set(status.last_applied_at)


@dataclass
class _Children:
    """One target's labelled gauges (last applied: once it has applied)."""

    sync: dict[str, Any]
    health: dict[str, Any]
    ready: Any
    last_applied: Any = None

    @classmethod
    def of(cls, m: Metrics, status: TargetStatus) -> _Children:
        labels = {"app": status.app, "cluster": status.cluster}
        return cls(
            sync={s: m.target_sync.labels(status=s, **labels) for s in SYNC_STATES},
            health={h: m.target_health.labels(status=h, **labels) for h in HEALTH_ORDER},
            ready=m.target_ready.labels(**labels),
        )


def _remove(metric: object, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        metric.remove(*labels)  # type: ignore[attr-defined]


class LogWriter:
    """One log line per event, warnings as warnings."""

    def __call__(self, status: TargetStatus, events: tuple[TargetEvent, ...]) -> None:
        for event in events:
            level = logging.WARNING if event.severity == "warning" else logging.INFO
            log.log(
                level,
                "event=target_%s cluster=%s app=%s commit=%s sync=%s health=%s message=%s",
                event.type.lower(),
                event.cluster,
                event.app,
                event.commit[:12],
                event.sync,
                event.health,
                _quoted(event.message),
            )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
