"""What the hub tells people: the status board, the sync history (SQLite) and metrics."""

from __future__ import annotations

from fleet.report.history import History, SyncRecord
from fleet.report.metrics import Metrics
from fleet.report.status import Board, Cell, ClusterState, matrix

__all__ = ["Board", "Cell", "ClusterState", "History", "Metrics", "SyncRecord", "matrix"]
