"""The status board: the targets' records, the clusters, the repositories, as data and as text.

The board keeps no per-target state of its own: it reads the :class:`~fleet.report.Targets`
store (the one record per target) and adds what is not a target's: each cluster's reachability
(connecting, ready, parked, error), each repository's last listing (ok or failed, since when), and
the config's error, and the hub's own problems (:attr:`Board.problems`, a callable asked at
each read: a history database that is away, a clash of cluster names), each a sentence that
keeps the board from green. :meth:`Board.to_json` is ``/api/status``; :func:`matrix` is pure
text for ``fleet status``; :func:`summary` says whether everything is green, which is what an
operator alerts on and what ``fleet status`` turns into its exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fleet.report.targets import Targets, TargetStatus

__all__ = ["Board", "Cell", "ClusterState", "RepoState", "matrix", "summary"]


@dataclass
class ClusterState:
    """A cluster of the registry: reachable, parked by the circuit breaker, or a broken file."""

    name: str
    state: str = "connecting"  # connecting | ready | parked | error
    labels: dict[str, str] = field(default_factory=dict)
    error: str = ""
    since: float = field(default_factory=time.time)


@dataclass
class RepoState:
    """A repository's last listing: ``ok`` or ``failed`` (with the error), and since when."""

    repo: str
    state: str = "ok"
    error: str = ""
    since: float = field(default_factory=time.time)
    failures: int = 0  # listings failed in a row (the poll backs off on them)


@dataclass(frozen=True)
class Cell:
    """One row of the matrix as ``fleet status`` reads it from ``/api/status`` (extras ignored)."""

    app: str
    cluster: str
    sync: str = "Unknown"
    health: str = "Unknown"
    revision: str = ""
    error: str = ""
    ready: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cell:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Board:
    """Every target (read from the store), cluster and repository the hub knows."""

    targets: Targets = field(default_factory=Targets)
    clusters: dict[str, ClusterState] = field(default_factory=dict)
    repos: dict[str, RepoState] = field(default_factory=dict)
    config_error: str = ""
    problems: Callable[[], Sequence[str]] = field(default=lambda: (), repr=False)
    """The hub's problems now, one sentence each (set by the hub; none by default)."""

    def cell(self, app: str, cluster: str) -> TargetStatus:
        """The record of `app` on `cluster` (a blank Unknown one before any)."""
        return self.targets.status((cluster, app))

    @property
    def cells(self) -> dict[tuple[str, str], TargetStatus]:
        """Every record by (app, cluster)."""
        return {(s.app, s.cluster): s for s in self.targets.all()}

    def forget_cluster(self, cluster: str) -> None:
        self.clusters.pop(cluster, None)

    def repo_ok(self, repo: str) -> None:
        state = self.repos.get(repo)
        if state is None or state.state != "ok":
            self.repos[repo] = RepoState(repo)

    def repo_failed(self, repo: str, error: str) -> RepoState:
        state = self.repos.get(repo)
        if state is None or state.state != "failed":
            state = self.repos[repo] = RepoState(repo, state="failed")
        state.error = error
        state.failures += 1
        return state

    def events_json(
        self, *, app: str | None = None, cluster: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The targets' recent events, newest first (``/api/events``)."""
        found = self.targets.events(app=app, cluster=cluster)
        return [e.to_json() for e in reversed(found[-limit:])]

    def to_json(self) -> dict[str, Any]:
        now = time.time()
        apps = []
        for status in self.targets.all():
            item = status.to_json()
            item["drift_age"] = None if status.drift_since is None else now - status.drift_since
            apps.append(item)
        clusters = [asdict(c) for c in sorted(self.clusters.values(), key=lambda c: c.name)]
        repos = [asdict(r) for r in sorted(self.repos.values(), key=lambda r: r.repo)]
        problems = [p for p in self.problems() if p]
        return {
            "summary": summary(
                self.targets.all(), self.clusters.values(), self.config_error, problems=problems
            ),
            "clusters": clusters,
            "repos": repos,
            "apps": apps,
            "config_error": self.config_error,
            "problems": problems,
        }


def summary(
    targets: Iterable[TargetStatus],
    clusters: Iterable[ClusterState],
    config_error: str = "",
    *,
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """Counts, and ``green``: every target ready, every cluster ready, the config valid, no
    problem of the hub's own (`problems`, counted as ``problems``)."""
    records = list(targets)
    states = list(clusters)
    not_ready = [f"{s.app}@{s.cluster}" for s in records if not s.ready]
    down = [c.name for c in states if c.state != "ready"]
    return {
        "targets": len(records),
        "ready": len(records) - len(not_ready),
        "not_ready": not_ready[:50],
        "out_of_sync": sum(s.sync == "OutOfSync" for s in records),
        "unknown": sum(s.sync == "Unknown" for s in records),
        "degraded": sum(s.health == "Degraded" for s in records),
        "clusters_not_ready": down,
        "problems": len(problems),
        "green": not not_ready and not down and not config_error and not problems,
    }


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def matrix(cells: Iterable[Cell | TargetStatus], clusters: Iterable[ClusterState]) -> str:
    """The app x cluster matrix as text: each cell ``Synced/Healthy @abc1234``."""
    cells = list(cells)
    states = {c.name: c for c in clusters}
    names = sorted(set(states) | {c.cluster for c in cells})
    apps = sorted({c.app for c in cells})
    by_key = {(c.app, c.cluster): c for c in cells}
    width = max([len(a) for a in apps] + [3]) + 2
    column = 28
    lines = [" " * width + "".join(_short(n, column - 1).ljust(column) for n in names)]
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
                if cell.error:
                    text = "! " + text
            row += _short(text, column - 1).ljust(column)
        lines.append(row.rstrip())
    for name in names:
        state = states.get(name)
        if state is not None and state.state != "ready":
            detail = f": {state.error}" if state.error else ""
            lines.append(f"! {state.name}: {state.state}{detail}")
    for cell in sorted(cells, key=lambda c: (c.app, c.cluster)):
        if cell.error:
            lines.append(f"! {cell.app} on {cell.cluster}: {cell.error}")
    return "\n".join(lines)
