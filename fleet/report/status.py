"""The live status board: one cell per (app, cluster), one row per cluster, as data and as text.

Sync status and health are separate, as users of Argo CD expect: *sync* says whether the cluster
matches git (Synced, OutOfSync, Unknown), *health* whether what was applied works (Healthy <
Suspended < Progressing < Missing < Degraded < Unknown). A cell also keeps the revision applied,
the counts of its last change set, its last error, and since when drift has been seen.

The board is plain data mutated by the hub's reconcile tasks (one event loop, so no locks) and
read by the HTTP API, the status page and ``fleet status``. :func:`matrix` is pure.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Board", "Cell", "ClusterState", "matrix"]


@dataclass
class Cell:
    """The status of one app on one cluster."""

    app: str
    cluster: str
    sync: str = "Unknown"  # Synced | OutOfSync | Unknown
    health: str = "Unknown"
    revision: str = ""
    last_result: str = ""  # synced | failed | ""
    last_sync_at: float | None = None
    changes: dict[str, int] = field(default_factory=dict)
    error: str = ""
    drift_since: float | None = None

    def drift_age(self, now: float | None = None) -> float | None:
        if self.drift_since is None:
            return None
        return (now if now is not None else time.time()) - self.drift_since


@dataclass
class ClusterState:
    """A cluster of the registry: reachable, parked by the circuit breaker, or a broken file."""

    name: str
    state: str = "connecting"  # connecting | ready | parked | error
    labels: dict[str, str] = field(default_factory=dict)
    error: str = ""
    since: float = field(default_factory=time.time)


@dataclass
class Board:
    """Every cell and cluster the hub knows."""

    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    clusters: dict[str, ClusterState] = field(default_factory=dict)
    config_error: str = ""

    def cell(self, app: str, cluster: str) -> Cell:
        key = (app, cluster)
        if key not in self.cells:
            self.cells[key] = Cell(app=app, cluster=cluster)
        return self.cells[key]

    def forget_cluster(self, cluster: str) -> None:
        self.clusters.pop(cluster, None)
        for key in [k for k in self.cells if k[1] == cluster]:
            del self.cells[key]

    def forget_app(self, app: str) -> None:
        for key in [k for k in self.cells if k[0] == app]:
            del self.cells[key]

    def to_json(self) -> dict[str, Any]:
        now = time.time()
        cells = []
        for cell in sorted(self.cells.values(), key=lambda c: (c.app, c.cluster)):
            item = asdict(cell)
            item["drift_age"] = cell.drift_age(now)
            cells.append(item)
        return {
            "clusters": [asdict(c) for c in sorted(self.clusters.values(), key=lambda c: c.name)],
            "apps": cells,
            "config_error": self.config_error,
        }


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def matrix(cells: Iterable[Cell], clusters: Iterable[ClusterState]) -> str:
    """The app x cluster matrix as text: each cell ``Synced/Healthy @abc1234``."""
    cells = list(cells)
    names = sorted({c.name for c in clusters} | {c.cluster for c in cells})
    apps = sorted({c.app for c in cells})
    by_key = {(c.app, c.cluster): c for c in cells}
    states = {c.name: c for c in clusters}
    width = max([len(a) for a in apps] + [3]) + 2
    column = 28
    lines = [" " * width + "".join(_short(n, column - 1).ljust(column) for n in names)]
    parked = [states[n] for n in names if n in states and states[n].state in ("parked", "error")]
    for app in apps:
        row = app.ljust(width)
        for name in names:
            cell = by_key.get((app, name))
            if cell is None:
                text = "-"
            else:
                text = f"{cell.sync}/{cell.health}"
                if cell.revision:
                    text += f" @{cell.revision[:7]}"
            row += _short(text, column - 1).ljust(column)
        lines.append(row.rstrip())
    for state in parked:
        lines.append(f"! {state.name}: {state.state}: {state.error}")
    return "\n".join(lines)
