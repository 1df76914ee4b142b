"""What the hub tells people: the targets' records, the board, history (SQLite, or PostgreSQL
shared by replicas: :func:`open_history` picks by the location, :func:`open_to_read` for the
CLI), metrics."""

from __future__ import annotations

from fleet.report.history import (
    EventRecord,
    History,
    HistoryStore,
    SyncRecord,
    open_history,
    open_to_read,
)
from fleet.report.metrics import Metrics
from fleet.report.status import Board, Cell, ClusterState, RepoState, matrix, summary
from fleet.report.subscribers import HistoryWriter, LogWriter, MetricsWriter
from fleet.report.targets import (
    Condition,
    Key,
    ObjectStatus,
    TargetEvent,
    Targets,
    TargetStatus,
)

__all__ = [
    "Board",
    "Cell",
    "ClusterState",
    "Condition",
    "EventRecord",
    "History",
    "HistoryStore",
    "HistoryWriter",
    "Key",
    "LogWriter",
    "Metrics",
    "MetricsWriter",
    "ObjectStatus",
    "RepoState",
    "SyncRecord",
    "TargetEvent",
    "TargetStatus",
    "Targets",
    "matrix",
    "open_history",
    "open_to_read",
    "summary",
]
