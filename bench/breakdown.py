"""Where one commit's time goes in fleet: push, webhook, listing, queue, fetch, render, apply.

Derived, never measured inside the hub: the bench records what it sees itself (when ``git push``
started and ended, when the webhook was sent and answered, when the independent watcher saw the
commit's value on each cluster) and reads the rest from the hub's JSON log (``fleet run
--log-format json --log-level debug``), whose lines carry a millisecond UTC ``ts``:

- ``event=git args=ls-remote ... elapsed_s=`` is the listing, ``args=fetch ...`` the fetch (their
  ``ts`` is the end, ``ts - elapsed_s`` the start); every other ``event=git`` is a local git
  process (checkout, ancestry, commit time) and is counted;
- ``event=render ... elapsed_s=`` is the render (none when the render cache answered);
- ``event=reconciled cluster=C commit=SHA12 seconds=`` ends the reconcile of cluster C, so
  ``ts - seconds`` is when a worker took it (the first such line: a later no-op reconcile of the
same commit is not the one that applied it).

Per cluster, the commit's latency (push start to the watcher's sighting) is cut at milestones in
time order: push end, listing start, listing end, the worker's start on that cluster, fetch end,
render end, and the sighting. Each phase is the gap between two milestones, a missing milestone
(no fetch, a cache hit) giving a zero phase, so the phases always add up to the latency:

    push      git push itself (the bench's clock)
    webhook   push end -> listing start (POST, signature check, matching the repository)
    listing   the ``git ls-remote`` the webhook waits for: a full listing, or for a signed push
              continuing the last one the ``ls-remote --heads`` that confirms its sha while the
              commit is fetched by id (the two overlap: whichever ends first is its phase, the
              other's rest the next); logs of the earlier hub, where the sha stood in for the
              listing (``event=push_noted``, no ls-remote), count the check of that sha
    queue     listing end -> a worker starts on the cluster
    fetch     -> the fetch ends (the first cluster pays it; the others wait on it); a pushed
              commit the webhook fetched by id before its check is this phase, between webhook
              (push end -> that fetch's start) and listing
    render    -> the render ends (checkout and kustomize, or the cache)
    apply     -> the watcher sees the value: plan (inventory and live reads), the PATCHes, and
              the watch event's way to the watcher; the log cannot split these (see the report)

``after_seen_s`` is the reconcile's tail after the sighting (health, inventory write, status):
off the latency path, but the worker is busy with it. Pure functions over parsed lines: the unit
tests feed them text.
"""

from __future__ import annotations

import datetime
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PHASES",
    "CommitTimes",
    "LogEvent",
    "breakdown",
    "parse_log",
    "parse_ts",
    "summarise",
]

PHASES = ("push", "webhook", "listing", "queue", "fetch", "render", "apply")


@dataclass(frozen=True)
class LogEvent:
    """One JSON log line of the hub: its time (Unix seconds), event name and other fields."""

    t: float
    event: str
    fields: Mapping[str, Any]

    def number(self, key: str) -> float:
        try:
            return float(self.fields.get(key, 0.0))
        except (TypeError, ValueError):
            return 0.0

    @property
    def git_op(self) -> str:
        """The git subcommand of an ``event=git`` line (``ls-remote``, ``fetch``, ``show``...)."""
        words = [w for w in str(self.fields.get("args", "")).split() if not w.startswith("-")]
        return words[0] if words else ""


@dataclass
class CommitTimes:
    """What the bench saw of one fleet commit, on its own clock (Unix seconds)."""

    index: int
    sha: str
    push_start: float
    push_end: float
    webhook_sent: float
    webhook_answered: float
    seen: dict[str, float] = field(default_factory=dict)  # cluster -> first sighting


def parse_ts(text: str) -> float:
    """``2026-12-01T10:25:40.123Z`` -> Unix seconds."""
    stamp = datetime.datetime.strptime(text.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    return stamp.replace(tzinfo=datetime.UTC).timestamp()


def parse_log(lines: Iterable[str]) -> list[LogEvent]:
    """The JSON lines that name an event, in order; anything else (a traceback) is skipped."""
    out: list[LogEvent] = []
    for raw in lines:
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
            t = parse_ts(str(record["ts"]))
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(record, dict) or not record.get("event"):
            continue
        out.append(LogEvent(t, str(record["event"]), record))
    return out


def _first(events: Sequence[LogEvent], name: str, op: str = "") -> LogEvent | None:
    for e in events:
        if e.event == name and (not op or e.git_op == op):
            return e
    return None


def breakdown(commit: CommitTimes, events: Sequence[LogEvent], *, until: float) -> dict[str, Any]:
    """The phases of `commit` per cluster, from the log `events` between its push and `until`."""
    window = [e for e in events if commit.push_start <= e.t <= until]
    listing = _first(window, "git", "ls-remote")
    fetch = _first(window, "git", "fetch")
    render = _first(window, "render")
    short = commit.sha[:12]
    reconciled: dict[str, LogEvent] = {}  # the first reconcile of the commit per cluster
    for e in window:
        if e.event == "reconciled" and str(e.fields.get("commit", "")) == short:
            reconciled.setdefault(str(e.fields.get("cluster")), e)
    listing_start = listing.t - listing.number("elapsed_s") if listing else None
    listing_end = listing.t if listing else None
    noted = None if listing else _first(window, "push_noted")
    early = fetch is not None and noted is not None and fetch.t <= noted.t
    if noted is not None:  # the pushed sha stood in for the listing: its check ends the phase
        listing_end = noted.t
        if early and fetch is not None:  # fetched by id within the webhook, before the check
            listing_start = fetch.t - fetch.number("elapsed_s")
    clusters: dict[str, dict[str, float]] = {}
    for cluster, seen in sorted(commit.seen.items()):
        done = reconciled.get(cluster)
        worker = done.t - done.number("seconds") if done else None
        marks = [
            ("push", commit.push_end),
            ("webhook", listing_start),
            *([("fetch", fetch.t)] if early and fetch else []),
            ("listing", listing_end),
            ("queue", worker),
            *([] if early or fetch is None else [("fetch", fetch.t)]),
            ("render", render.t if render else None),
            ("apply", seen),
        ]
        phases: dict[str, float] = {"fetch": 0.0}
        last = commit.push_start
        for name, mark in marks:
            if mark is None or mark < last:
                phases[name] = 0.0  # absent, or already behind us (a fetch another paid)
                continue
            at = min(mark, seen)
            phases[name] = at - last
            last = at
        phases["apply"] += seen - last if last < seen else 0.0
        phases["total"] = seen - commit.push_start
        phases["after_seen_s"] = max(0.0, done.t - seen) if done else 0.0
        clusters[cluster] = phases
    git_ops = [e.git_op for e in window if e.event == "git"]
    return {
        "index": commit.index,
        "sha": short,
        "clusters": clusters,
        "webhook_round_trip_s": commit.webhook_answered - commit.webhook_sent,
        "listing_s": listing.number("elapsed_s") if listing else None,
        "fetch_s": fetch.number("elapsed_s") if fetch else None,
        "render_s": render.number("elapsed_s") if render else None,
        "renders": sum(1 for e in window if e.event == "render"),
        "git_processes": len(git_ops),
        "git_by_op": {op: git_ops.count(op) for op in sorted(set(git_ops))},
        "reconciles": sum(
            1 for e in window if e.event == "reconciled" and e.fields.get("commit") == short
        ),
        "reconcile_s": {c: e.number("seconds") for c, e in sorted(reconciled.items())},
    }


def summarise(
    rows: Sequence[Mapping[str, Any]], *, phases: Sequence[str] = PHASES
) -> dict[str, Any]:
    """Medians over commits: each phase per cluster, and along the last cluster to converge."""
    extra = ("after_seen_s",) if phases == PHASES else ()
    per_cluster: dict[str, list[float]] = {p: [] for p in (*phases, "total", *extra)}
    slowest: dict[str, list[float]] = {p: [] for p in (*phases, "total")}
    for row in rows:
        clusters: Mapping[str, Mapping[str, float]] = row["clusters"]
        for split in clusters.values():
            for name, values in per_cluster.items():
                values.append(split[name])
        if clusters:
            last = max(clusters.values(), key=lambda p: p["total"])
            for name, values in slowest.items():
                values.append(last[name])

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def of(key: str) -> float | None:
        return med([float(r[key]) for r in rows if r.get(key) is not None])

    return {
        "commits": len(rows),
        "per_cluster_median_s": {k: med(v) for k, v in per_cluster.items()},
        "slowest_cluster_median_s": {k: med(v) for k, v in slowest.items()},
        "webhook_round_trip_s": of("webhook_round_trip_s"),
        "listing_s": of("listing_s"),
        "fetch_s": of("fetch_s"),
        "render_s": of("render_s"),
        "git_processes_per_commit": of("git_processes"),
        "renders_per_commit": of("renders"),
    }
