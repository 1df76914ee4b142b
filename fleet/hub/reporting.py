"""The hub's reporting side: one record per target, and everything that reads it.

:class:`~fleet.report.Targets` holds the only per-target state; the reconciler's summary step is
its one writer. Everything that reports subscribes to the outcome event each summary emits: the
history (SQLite, or PostgreSQL shared by replicas), the metrics, the log, and the notifier (the
notification sinks, configured later from the config). The board reads the records and adds what
the hub itself shows: clusters, repositories, the config, the hub's own problems.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from fleet.hub import gitconfig
from fleet.hub.settings import HubSettings
from fleet.notify import Notifier, NotifyCollector
from fleet.report import (
    HistoryStore,
    HistoryWriter,
    LogWriter,
    Metrics,
    MetricsWriter,
    Targets,
    open_history,
)
from fleet.runtime import Clock

__all__ = ["Reporting", "open_reporting"]


@dataclass(frozen=True)
class Reporting:
    """The targets' records and their readers."""

    targets: Targets
    board: gitconfig.ConfigBoard
    metrics: Metrics
    history: HistoryStore
    notifier: Notifier


def open_reporting(
    settings: HubSettings, *, clock: Clock, repo_of: Callable[[str], str]
) -> Reporting:
    """The records, the board, and every subscriber, wired (`repo_of`: an app's repository URL,
    for the notifier's commit statuses)."""
    targets = Targets()
    metrics = Metrics()
    history = open_history(settings.history or settings.history_path, registry=metrics.registry)
    notifier = Notifier((), env=os.environ, repo_of=repo_of, clock=clock)
    targets.subscribe("history", HistoryWriter(history))
    targets.subscribe("metrics", MetricsWriter(metrics))
    targets.subscribe("log", LogWriter())
    targets.subscribe("notify", notifier)
    metrics.registry.register(NotifyCollector(notifier))
    board = gitconfig.ConfigBoard(targets=targets)
    return Reporting(
        targets=targets, board=board, metrics=metrics, history=history, notifier=notifier
    )
