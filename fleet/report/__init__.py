"""What the hub tells people: the targets' records, the board, history (SQLite), metrics."""

from __future__ import annotations

from fleet.report.history import EventRecord, History, SyncRecord
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
    "summary",
]
